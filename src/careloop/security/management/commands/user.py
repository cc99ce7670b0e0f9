"""`careloop user create|set-password|role|disable|enable|unlock|reset-mfa NAME`.

Passwords are read from the terminal (asked twice) or, for scripts, from standard
input with `--password-stdin`; never from the command line, where `ps` and shell
history would keep them.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser

from careloop.core.cli import CareloopCommand
from careloop.security import users
from careloop.security.models import Role, User
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Manage staff accounts: create, set a password or role, disable, unlock, reset MFA."
    permissions = ((Op.WRITE, Resource.USERS),)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a staff account.")
        create.add_argument("username")
        create.add_argument("--role", required=True, choices=Role.values)
        create.add_argument("--first-name", default="")
        create.add_argument("--last-name", default="")
        create.add_argument("--password-stdin", action="store_true")
        password = sub.add_parser("set-password", help="Set a new password.")
        password.add_argument("username")
        password.add_argument("--password-stdin", action="store_true")
        role = sub.add_parser("role", help="Change the account's role.")
        role.add_argument("username")
        role.add_argument("role", choices=Role.values)
        for name, text in [
            ("disable", "Disable the account and end all its sessions and API tokens now."),
            ("enable", "Allow a disabled account to sign in again."),
            ("unlock", "Lift a lockout after too many failed sign-ins."),
            ("reset-mfa", "Remove the account's authenticator (it enrols again at sign-in)."),
        ]:
            sub.add_parser(name, help=text).add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        username = options["username"]
        if action == "create":
            self._create(options)
            return
        user = User.objects.filter(username=username).first()
        if user is None:
            self.fail(f"there is no account named {username!r}.")
        if action == "set-password":
            self._validated(
                lambda: users.user_set_password(
                    actor=None, user=user, password=self._password(options)
                )
            )
            self.stdout.write(f"Password set for {username}; their other sessions have ended.")
        elif action == "role":
            users.user_role_change(actor=None, user=user, role=options["role"])
            self.stdout.write(f"{username} is now {Role(options['role']).label}.")
        elif action == "disable":
            users.user_disable(actor=None, user=user)
            self.stdout.write(f"{username} is disabled; their sessions and API tokens have ended.")
        elif action == "enable":
            users.user_enable(actor=None, user=user)
            self.stdout.write(f"{username} may sign in again.")
        elif action == "unlock":
            users.user_unlock(actor=None, user=user)
            self.stdout.write(f"{username} is unlocked.")
        else:
            users.user_mfa_reset(actor=None, user=user)
            self.stdout.write(
                f"{username}'s authenticator is removed; they set up a new one at next sign-in."
            )

    def _create(self, options: dict[str, Any]) -> None:
        username = options["username"]
        if User.objects.filter(username=username).exists():
            self.fail(f"an account named {username!r} exists already.")
        self._validated(
            lambda: users.user_create(
                actor=None,
                username=username,
                role=options["role"],
                password=self._password(options),
                first_name=options["first_name"],
                last_name=options["last_name"],
            )
        )
        self.stdout.write(
            f"Created {username} ({Role(options['role']).label}). At first sign-in they set "
            "up an authenticator app."
        )

    def _validated(self, action: Any) -> None:
        try:
            action()
        except ValidationError as error:
            self.fail("the password was refused: " + " ".join(error.messages))

    def _password(self, options: dict[str, Any]) -> str:
        if options["password_stdin"]:
            return sys.stdin.readline().rstrip("\r\n")
        if not sys.stdin.isatty():
            self.fail("no terminal to ask for the password on; use --password-stdin.")
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            self.fail("the two passwords differ.")
        return first
