"""The two steps of a staff sign-in, and re-authentication before sensitive actions.

Step one checks the password (unless the account is locked) and signs the user in
*unverified*: the MFA gate (careloop.security.auth.gate) lets such a session reach
only the second step. Step two checks a TOTP code (or confirms a new device) and
marks the session verified; only then is the sign-in audited as `auth.login`.
Each function returns an outcome instead of raising, so that the failure it audits
is committed, not rolled back with an exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.contrib.auth import authenticate
from django.db import transaction
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from careloop.core.clock import now
from careloop.security.audit import audit_record
from careloop.security.auth import mfa
from careloop.security.auth.lockout import (
    account_locked,
    login_failure_record,
    login_failures_clear,
)
from careloop.security.models import Role, User

REAUTH_AT = "careloop.reauth_at"


class Outcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    LOCKED = "locked"


@dataclass(frozen=True)
class PasswordOutcome:
    outcome: Outcome
    user: User | None = None


def staff_user_named(username: str) -> User | None:
    """The staff account with exactly this username (patients sign in elsewhere)."""
    return User.objects.filter(username=username).exclude(role=Role.PATIENT).first()


def sign_in_password(*, request: HttpRequest, username: str, password: str) -> PasswordOutcome:
    """Step one. On OK the caller signs the user in (unverified) with `auth.login`."""
    named = staff_user_named(username)
    if named is not None and account_locked(named):
        audit_record(action="auth.login_failed", request=request, actor=named, outcome="denied")
        return PasswordOutcome(Outcome.LOCKED)
    user = authenticate(request, username=username, password=password)
    if isinstance(user, User) and user.role != Role.PATIENT:
        return PasswordOutcome(Outcome.OK, user)
    locked = login_failure_record(request=request, user=named, action="auth.login_failed")
    return PasswordOutcome(Outcome.LOCKED if locked else Outcome.INVALID)


def _verified(request: HttpRequest, user: User, device: TOTPDevice) -> None:
    otp_login(request, device)
    # A new session key for the more powerful session, as at any privilege change.
    request.session.cycle_key()
    login_failures_clear(user=user)


def sign_in_code(*, request: HttpRequest, user: User, code: str) -> Outcome:
    """Step two for an enrolled user: a fresh code from their device verifies the session."""
    if account_locked(user):
        return Outcome.LOCKED
    device = mfa.mfa_device(user)
    if device is None:
        return Outcome.INVALID
    with transaction.atomic():
        if mfa.mfa_code_accepted(user=user, device=device, code=code):
            _verified(request, user, device)
            audit_record(action="auth.login", request=request, actor=user)
            return Outcome.OK
    locked = login_failure_record(request=request, user=user, action="auth.mfa_failed")
    return Outcome.LOCKED if locked else Outcome.INVALID


def enrol_confirm(*, request: HttpRequest, user: User, code: str) -> Outcome:
    """Step two for a user without a device: a code from the new device confirms it."""
    if mfa.mfa_device(user) is not None or account_locked(user):
        return Outcome.INVALID
    with transaction.atomic():
        device = mfa.mfa_pending_device(user)
        if mfa.mfa_code_accepted(user=user, device=device, code=code):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            _verified(request, user, device)
            audit_record(
                action="auth.mfa_enrolled",
                request=request,
                actor=user,
                resource_type="otp_device",
                resource_id=str(device.pk),
            )
            audit_record(action="auth.login", request=request, actor=user)
            return Outcome.OK
    locked = login_failure_record(request=request, user=user, action="auth.mfa_failed")
    return Outcome.LOCKED if locked else Outcome.INVALID


def reauthenticate(*, request: HttpRequest, user: User, password: str, code: str) -> Outcome:
    """The password and a fresh code again, before a sensitive action (`reauth_required`)."""
    if account_locked(user):
        return Outcome.LOCKED
    device = mfa.mfa_device(user)
    with transaction.atomic():
        if (
            user.check_password(password)
            and device is not None
            and mfa.mfa_code_accepted(user=user, device=device, code=code)
        ):
            request.session[REAUTH_AT] = now().timestamp()
            audit_record(action="auth.reauth", request=request, actor=user)
            return Outcome.OK
    # A failed re-authentication is a guessed password or code like any other.
    locked = login_failure_record(request=request, user=user, action="auth.reauth")
    return Outcome.LOCKED if locked else Outcome.INVALID
