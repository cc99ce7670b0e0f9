"""Demo staff accounts for the embedded install (`careloop run`): one per staff role.

Passwords are random and stored hashed like any other. Because a hash cannot be shown
again, the plaintext demo credentials are also kept in `var/demo-credentials.txt`
(mode 0600) so that a second `make run` can print them again. That file is the reason
this refuses to run in production: real accounts never have a stored plaintext password.
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from django.conf import settings
from django.db import transaction

from careloop.security.models import STAFF_ROLES, User

CREDENTIALS_NAME = "demo-credentials.txt"
PASSWORD_LENGTH = 20
# No look-alike characters (0/O, 1/l/I): people type these from a terminal.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")


class DemoUsersRefused(Exception):
    """Demo accounts with known passwords were asked for in production."""


def demo_credentials_path() -> Path:
    return Path(settings.VAR_DIR) / CREDENTIALS_NAME


@transaction.atomic
def demo_users_ensure() -> list[tuple[str, str, str]]:
    """One demo user per staff role, as (username, role, password), created on first use.

    A user whose stored password no longer matches the credentials file (or who has
    none there) gets a new random password, so what is printed always works.
    """
    if settings.PRODUCTION:
        raise DemoUsersRefused(
            "demo accounts are for the embedded demo only; careloop will not create "
            "accounts with stored passwords in production."
        )
    known = _credentials_read()
    result: list[tuple[str, str, str]] = []
    changed = False
    for role in STAFF_ROLES:
        username = str(role.value)
        user = User.objects.filter(username=username).first()
        password = known.get(username)
        if user is not None and password is not None and user.check_password(password):
            result.append((username, str(role.value), password))
            continue
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))
        if user is None:
            user = User(username=username, role=role, first_name="Demo", last_name=role.label)
            user.set_password(password)
            user.save()
        else:
            user.role = role
            user.set_password(password)
            user.save(update_fields=["role", "password"])
        result.append((username, str(role.value), password))
        changed = True
    if changed:
        _credentials_write(result)
    return result


def _credentials_read() -> dict[str, str]:
    try:
        text = demo_credentials_path().read_text()
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#"):
            found[fields[0]] = fields[2]
    return found


def _credentials_write(rows: list[tuple[str, str, str]]) -> None:
    path = demo_credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# careloop demo accounts (embedded demo only): username role password"]
    lines += [" ".join(row) for row in rows]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
