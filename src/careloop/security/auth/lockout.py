"""Account lockout: `LOCKOUT_FAILURES` failures within `LOCKOUT_WINDOW_SECONDS` lock a
staff account for `LOCKOUT_SECONDS`.

Failures count only against a real staff account (a wrong password, a wrong second-step
code, a failed re-authentication). A username that matches no staff account is audited
without naming it: free-typed text in a username box may be a patient's name.
While an account is locked its sign-ins are refused without checking the password, and
are not counted again, so the lock ends on time even if someone keeps trying.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from careloop.core.clock import now
from careloop.security.audit import audit_record
from careloop.security.auth.models import AccountState, LoginFailure
from careloop.security.models import User


def account_locked(user: User) -> bool:
    return AccountState.objects.filter(user=user, locked_until__gt=now()).exists()


@transaction.atomic
def login_failure_record(*, request: HttpRequest, user: User | None, action: str) -> bool:
    """Audit one failed attempt and count it against `user`; True if it locked the account.

    `action` is `auth.login_failed`, `auth.mfa_failed` or `auth.reauth` (failed).
    """
    at = now()
    locked = False
    if user is not None:
        LoginFailure.objects.create(user=user, at=at)
        window = datetime.timedelta(seconds=settings.LOCKOUT_WINDOW_SECONDS)
        recent = LoginFailure.objects.filter(user=user, at__gt=at - window).count()
        if recent >= settings.LOCKOUT_FAILURES:
            AccountState.objects.get_or_create(user=user)
            # The row lock makes concurrent failures agree on who locked the account.
            state = AccountState.objects.select_for_update().get(user=user)
            if state.locked_until is None or state.locked_until <= at:
                state.locked_until = at + datetime.timedelta(seconds=settings.LOCKOUT_SECONDS)
                state.save(update_fields=["locked_until"])
                locked = True
    # `actor=None` with a request would name the anonymous caller: say "anonymous".
    audit_record(
        action=action,
        request=request,
        actor=user,
        actor_kind=None if user is not None else "anonymous",
        outcome="failure",
    )
    if locked:
        audit_record(action="auth.lockout", request=request, actor=user, outcome="denied")
    return locked


def login_failures_clear(*, user: User) -> None:
    """Forget failures once the user has proved both factors."""
    LoginFailure.objects.filter(user=user).delete()


def failures_prune() -> int:
    """Forget failures too old to count (the sweep calls this)."""
    window = datetime.timedelta(seconds=settings.LOCKOUT_WINDOW_SECONDS)
    deleted, _ = LoginFailure.objects.filter(at__lte=now() - window).delete()
    return deleted
