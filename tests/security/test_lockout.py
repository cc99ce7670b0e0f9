"""Lockout after 10 failures in 15 minutes (not after 9), lock expiry, and the rate
limits on the sign-in endpoint (per address and per username, kept in the database)."""

from __future__ import annotations

import datetime
import io

import pytest
from django.test import Client

from careloop.core import clock
from careloop.security.auth.models import RateLimitHit
from careloop.security.models import AuditEvent, Role, User
from careloop.security.ratelimit import ratelimit_hit
from tests.patients.builders import PASSWORD, make_user
from tests.security.personas import totp_code, totp_device

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 3, 2, 14, 0, tzinfo=datetime.UTC)
LOCKED_TEXT = "account is locked"


def at(minutes: float) -> datetime.datetime:
    return START + datetime.timedelta(minutes=minutes)


@pytest.fixture
def user() -> User:
    user = make_user(Role.CLINICIAN)
    totp_device(user)
    return user


WRONG = "wrong password"


def attempt(client: Client, user: User, minutes: float, password: str = WRONG) -> str:
    with clock.frozen(at(minutes)):
        response = client.post(
            "/accounts/login/", {"username": user.username, "password": password}, secure=True
        )
    if response.status_code == 302:
        return "signed in"
    return "locked" if LOCKED_TEXT in response.content.decode() else "refused"


def test_nine_failures_do_not_lock_the_account(client: Client, user: User) -> None:
    for n in range(9):
        assert attempt(client, user, n) == "refused"
    assert attempt(client, user, 9.5, PASSWORD) == "signed in"
    assert not AuditEvent.objects.filter(action="auth.lockout").exists()


def test_ten_failures_in_15_minutes_lock_the_account(client: Client, user: User) -> None:
    for n in range(9):
        assert attempt(client, user, n) == "refused"
    assert attempt(client, user, 14) == "locked"
    assert attempt(client, user, 15, PASSWORD) == "locked"
    lockouts = AuditEvent.objects.filter(action="auth.lockout")
    assert [(e.actor_label, e.outcome) for e in lockouts] == [(user.username, "denied")]
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 11


def test_failures_spread_over_more_than_15_minutes_do_not_lock(client: Client, user: User) -> None:
    for n in range(9):
        assert attempt(client, user, n) == "refused"
    assert attempt(client, user, 15.5) == "refused"  # the first failure has aged out
    assert attempt(client, user, 16, PASSWORD) == "signed in"


def test_the_lock_expires_after_15_minutes(client: Client, user: User) -> None:
    for n in range(10):
        attempt(client, user, n * 0.5)
    assert attempt(client, user, 4.5 + 14, PASSWORD) == "locked"
    assert attempt(client, user, 4.5 + 15.1, PASSWORD) == "signed in"


def test_wrong_codes_count_towards_the_lock(client: Client, user: User, settings: object) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # type: ignore[attr-defined]
    with clock.frozen(at(0)):
        client.post(
            "/accounts/login/", {"username": user.username, "password": PASSWORD}, secure=True
        )
        for _ in range(9):
            page = client.post("/accounts/mfa/verify/", {"code": "000000"}, secure=True)
            assert page.status_code == 200
        locked = client.post("/accounts/mfa/verify/", {"code": "000000"}, secure=True)
    assert locked.status_code == 403 and LOCKED_TEXT in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Locked: even the right password does not reach the second step.
    assert attempt(client, user, 1, PASSWORD) == "locked"


def test_success_forgets_earlier_failures(client: Client, user: User) -> None:
    for n in range(9):
        attempt(client, user, n)
    with clock.frozen(at(9)):
        client.post(
            "/accounts/login/", {"username": user.username, "password": PASSWORD}, secure=True
        )
        client.post("/accounts/mfa/verify/", {"code": totp_code(totp_device(user))}, secure=True)
        client.post("/accounts/logout/", secure=True)
    for n in range(9):
        assert attempt(client, user, 10 + n * 0.1) == "refused"


def test_an_administrator_can_unlock_early(client: Client, user: User) -> None:
    from django.core.management import call_command

    for n in range(10):
        attempt(client, user, n * 0.1)
    call_command("user", "unlock", user.username, stdout=io.StringIO())
    assert attempt(client, user, 2, PASSWORD) == "signed in"


# --- rate limits ----------------------------------------------------------------------


def test_sign_in_is_rate_limited_per_username(client: Client, settings: object) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login.username": (3, 60)}  # type: ignore[attr-defined]
    responses = []
    for n in range(4):
        with clock.frozen(at(n * 0.1)):
            responses.append(
                client.post(
                    "/accounts/login/",
                    {"username": "Somebody Typed", "password": "x"},
                    secure=True,
                    REMOTE_ADDR=f"10.0.0.{n + 1}",
                )
            )
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[-1]["Retry-After"] == "60"
    # Other usernames are unaffected; after the window the name may try again.
    with clock.frozen(at(0.5)):
        other = client.post("/accounts/login/", {"username": "b", "password": "x"}, secure=True)
    assert other.status_code == 200
    with clock.frozen(at(1.5)):
        later = client.post(
            "/accounts/login/", {"username": "Somebody Typed", "password": "x"}, secure=True
        )
    assert later.status_code == 200


def test_sign_in_is_rate_limited_per_address(client: Client, settings: object) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login.ip": (5, 600)}  # type: ignore[attr-defined]
    with clock.frozen(at(0)):
        codes = [
            client.post(
                "/accounts/login/", {"username": f"user{n}", "password": "x"}, secure=True
            ).status_code
            for n in range(6)
        ]
        elsewhere = client.post(
            "/accounts/login/",
            {"username": "user9", "password": "x"},
            secure=True,
            REMOTE_ADDR="192.0.2.7",
        )
    assert codes == [200] * 5 + [429]
    assert elsewhere.status_code == 200


def test_rate_limit_buckets_never_store_the_typed_text() -> None:
    ratelimit_hit(scope="login.username", key="maria gonzalez")
    bucket = RateLimitHit.objects.get().bucket
    assert "maria" not in bucket and len(bucket) == 64
