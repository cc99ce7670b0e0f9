"""`careloop token create|list|revoke`: personal API tokens for staff.

The token is printed once, by `create`, and cannot be shown again: only its hash is kept.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import CommandParser

from careloop.core.cli import CareloopCommand
from careloop.core.errors import NotFound
from careloop.security.models import User
from careloop.security.permissions import Op, Resource
from careloop.security.tokens import (
    DEFAULT_DAYS,
    MAX_DAYS,
    TokenError,
    token_create,
    token_list,
    token_revoke,
    token_state,
)


class Command(CareloopCommand):
    help = "Create, list and revoke staff members' personal API tokens."
    permissions = ((Op.READ, Resource.USERS), (Op.WRITE, Resource.USERS))

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Issue a token and print it (once).")
        create.add_argument("--user", required=True, help="The staff member's username.")
        create.add_argument("--name", default="", help="A label, e.g. what the token is for.")
        create.add_argument(
            "--days",
            type=int,
            default=DEFAULT_DAYS,
            help=f"Days until it expires, 1 to {MAX_DAYS} (default: %(default)s).",
        )
        listing = sub.add_parser("list", help="List a staff member's tokens (never the secret).")
        listing.add_argument("--user", required=True, help="The staff member's username.")
        revoke = sub.add_parser("revoke", help="Revoke a token by its id (from `list`).")
        revoke.add_argument("id", help="The token's id.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self._create(options["user"], options["name"], options["days"])
        elif action == "list":
            self._list(options["user"])
        else:
            self._revoke(options["id"])

    def _user(self, username: str) -> User:
        user = User.objects.filter(username=username).first()
        if user is None:
            self.fail(f"there is no user {username!r}. Check the spelling of --user.")
        return user

    def _create(self, username: str, name: str, days: int) -> None:
        try:
            issued = token_create(user=self._user(username), name=name, days=days)
        except TokenError as error:
            self.fail(f"{error}.")
        self.stdout.write(issued.raw)
        self.stderr.write(
            f"Token {issued.token.prefix} (id {issued.token.id}) for {username}, expires "
            f"{issued.token.expires_at:%Y-%m-%d %H:%M} UTC. Copy it now: it cannot be shown again."
        )

    def _list(self, username: str) -> None:
        tokens = token_list(user=self._user(username))
        if not tokens:
            self.stdout.write(f"{username} has no API tokens.")
        for token in tokens:
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.id}  clp_{token.prefix}_…  {token_state(token):<7}  "
                f"created {token.created_at:%Y-%m-%d}  expires {token.expires_at:%Y-%m-%d}  "
                f"last used {used}  {token.name}".rstrip()
            )

    def _revoke(self, raw_id: str) -> None:
        try:
            token_id = uuid.UUID(raw_id)
        except ValueError:
            self.fail(
                f"{raw_id!r} is not a token id. `careloop token list --user NAME` shows them."
            )
        try:
            token = token_revoke(token_id=token_id)
        except NotFound:
            self.fail(
                f"there is no token {token_id}. `careloop token list --user NAME` shows them."
            )
        self.stdout.write(f"Token {token.prefix} (id {token.id}) is revoked.")
