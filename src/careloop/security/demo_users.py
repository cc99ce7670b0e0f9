"""Demo staff accounts for the embedded install (`careloop run`): one per staff role.

Each gets a random password (stored hashed like any other, and validated like any
other) and a confirmed TOTP device, so a person can sign in at once: `careloop run`
prints the password, the TOTP secret as text and as a terminal QR code to scan.
Because a hash cannot be shown again, the plaintext demo credentials are also kept in
`var/demo-credentials.txt` (mode 0600) so that a second `make run` can print them
again. That file is the reason this refuses to run in production: real accounts never
have a stored plaintext password or second factor.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from careloop.security.auth import mfa
from careloop.security.models import STAFF_ROLES, Role, User

CREDENTIALS_NAME = "demo-credentials.txt"
PASSWORD_LENGTH = 20
# No look-alike characters (0/O, 1/l/I): people type these from a terminal.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
TOTP_KEY_BYTES = 20


class DemoUsersRefused(Exception):
    """Demo accounts with known passwords were asked for in production."""


class DemoSignIn(NamedTuple):
    username: str
    role: str
    password: str
    # The TOTP key in base32, as authenticator apps take it when typed.
    totp_secret: str


def demo_credentials_path() -> Path:
    return Path(settings.VAR_DIR) / CREDENTIALS_NAME


def _secret_of(key_hex: str) -> str:
    return base64.b32encode(bytes.fromhex(key_hex)).decode().rstrip("=")


def _key_of(secret: str) -> str:
    padded = secret + "=" * (-len(secret) % 8)
    return base64.b32decode(padded).hex()


@transaction.atomic
def demo_users_ensure() -> list[DemoSignIn]:
    """One demo user per staff role, created on first use, each with a TOTP device.

    A user whose stored password or device no longer matches the credentials file (or
    who has none there) gets a new random password and device, so what is printed
    always works.
    """
    if settings.PRODUCTION:
        raise DemoUsersRefused(
            "demo accounts are for the embedded demo only; careloop will not create "
            "accounts with stored passwords in production."
        )
    known = _credentials_read()
    result: list[DemoSignIn] = []
    changed = False
    for role in STAFF_ROLES:
        username = str(role.value)
        user = User.objects.filter(username=username).first()
        remembered = known.get(username)
        if user is not None and remembered is not None and _still_valid(user, remembered):
            result.append(remembered)
            continue
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))
        if user is None:
            user = User(username=username, role=role, first_name="Demo", last_name=role.label)
            validate_password(password, user)
            user.set_password(password)
            user.save()
        else:
            validate_password(password, user)
            user.role = role
            user.is_active = True
            user.set_password(password)
            user.save(update_fields=["role", "is_active", "password"])
        TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(
            user=user,
            name=mfa.DEVICE_NAME,
            confirmed=True,
            key=secrets.token_bytes(TOTP_KEY_BYTES).hex(),
        )
        result.append(DemoSignIn(username, str(role.value), password, _secret_of(device.key)))
        changed = True
    if changed:
        _credentials_write(result)
    return result


def _still_valid(user: User, remembered: DemoSignIn) -> bool:
    device = mfa.mfa_device(user)
    return (
        user.is_active
        and user.check_password(remembered.password)
        and device is not None
        and device.key == _key_of(remembered.totp_secret)
    )


def demo_sign_in_text(sign_ins: list[DemoSignIn]) -> str:
    """The banner lines for `careloop run`: each account's password, then its TOTP
    secret as text and as a QR code for an authenticator app to scan."""
    lines: list[str] = []
    for sign_in in sign_ins:
        label = Role(sign_in.role).label
        lines.append(f"    {sign_in.username:<18} {sign_in.password}   ({label})")
        lines.append(f"      TOTP secret: {sign_in.totp_secret}")
        # An unsaved device only to spell the otpauth:// URI the way enrolment does.
        device = TOTPDevice(user=User(username=sign_in.username), key=_key_of(sign_in.totp_secret))
        qr = mfa.qr_terminal(mfa.totp_uri(device))
        lines += ["      " + row for row in qr.rstrip("\n").splitlines()]
    return "\n".join(lines)


def _credentials_read() -> dict[str, DemoSignIn]:
    try:
        text = demo_credentials_path().read_text()
    except FileNotFoundError:
        return {}
    found: dict[str, DemoSignIn] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and not line.startswith("#"):
            found[fields[0]] = DemoSignIn(*fields)
    return found


def _credentials_write(rows: list[DemoSignIn]) -> None:
    path = demo_credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# careloop demo accounts (embedded demo only): username role password totp-secret"]
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
