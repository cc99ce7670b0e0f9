"""Staff accounts: create, set a password, change a role, disable, unlock, reset the
second factor. Each takes the acting user (None for the console operator, see
careloop.security.console) and audits the change in its transaction.

Every path that sets a password validates it (length 12 or more, not a common
password, not like the username; settings.AUTH_PASSWORD_VALIDATORS), including the
demo accounts and `createsuperuser`.
"""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from careloop.security.audit import audit_record
from careloop.security.auth.models import AccountState, LoginFailure
from careloop.security.console import ConsoleActor, console_actor
from careloop.security.models import Role, User
from careloop.security.sessions import sessions_end_for_user
from careloop.security.tokens import tokens_revoke_for_user


def _audit(
    action: str,
    *,
    actor: User | None,
    user: User,
    fields: tuple[str, ...] = (),
    request: HttpRequest | None = None,
) -> None:
    """The account change's audit event; no actor means the console operator."""
    who: User | ConsoleActor = actor if actor is not None else console_actor()
    audit_record(
        action=action,
        request=request,
        actor=who,
        resource_type="user",
        resource_id=str(user.pk),
        fields=fields,
    )


@transaction.atomic
def user_create(
    *,
    actor: User | None,
    username: str,
    role: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    request: HttpRequest | None = None,
) -> User:
    """A new account; `password` must pass the validators (ValidationError otherwise)."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(Role.values)}")
    user = User(username=username, role=role, first_name=first_name, last_name=last_name)
    validate_password(password, user)
    user.set_password(password)
    user.save()
    _audit("user.create", actor=actor, user=user, request=request)
    return user


@transaction.atomic
def user_set_password(*, actor: User | None, user: User, password: str) -> None:
    """A new password (validated); the user's other sessions end with the old one."""
    validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    sessions_end_for_user(user_id=user.pk)
    _audit("user.password_set", actor=actor, user=user, fields=("password",))


@transaction.atomic
def user_role_change(
    *, actor: User | None, user: User, role: str, request: HttpRequest | None = None
) -> User:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(Role.values)}")
    if user.role == role:
        return user
    user.role = role
    user.save(update_fields=["role"])
    _audit("user.role_change", actor=actor, user=user, fields=("role",), request=request)
    return user


@transaction.atomic
def user_disable(*, actor: User | None, user: User, request: HttpRequest | None = None) -> User:
    """Disable the account and end every session and API token it has, at once.

    Sessions end through the session generation (careloop.security.sessions), which
    every process checks on every request; tokens are revoked in this transaction.
    """
    user.is_active = False
    user.save(update_fields=["is_active"])
    sessions_end_for_user(user_id=user.pk)
    tokens_revoke_for_user(user=user, actor=actor, request=request)
    _audit("user.disable", actor=actor, user=user, request=request)
    return user


@transaction.atomic
def user_enable(*, actor: User | None, user: User) -> User:
    """Allow sign-in again. Old sessions stay ended; revoked tokens stay revoked."""
    user.is_active = True
    user.save(update_fields=["is_active"])
    _audit("user.enable", actor=actor, user=user)
    return user


@transaction.atomic
def user_unlock(*, actor: User | None, user: User) -> None:
    """Lift a lockout early and forget the failures that caused it."""
    AccountState.objects.filter(user=user).update(locked_until=None)
    LoginFailure.objects.filter(user=user).delete()
    _audit("user.unlock", actor=actor, user=user)


@transaction.atomic
def user_mfa_reset(*, actor: User | None, user: User) -> int:
    """Remove the user's TOTP devices (a lost phone) and end their sessions; at the next
    sign-in they enrol a new device. Returns how many devices were removed."""
    removed, _ = TOTPDevice.objects.filter(user=user).delete()
    sessions_end_for_user(user_id=user.pk)
    _audit("user.mfa_reset", actor=actor, user=user)
    return int(removed)
