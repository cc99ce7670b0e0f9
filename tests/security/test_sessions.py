"""Sessions: 15 minutes idle (background polling is not activity), 12 hours at most,
a warning before the idle sign-out, and disabling a user ends their sessions at once."""

from __future__ import annotations

import datetime
import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.test import Client

from careloop.core import clock
from careloop.security.models import AuditEvent, Role, User
from careloop.security.users import user_disable, user_enable, user_set_password
from tests.patients.builders import make_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 3, 2, 14, 0, tzinfo=datetime.UTC)
BACKGROUND = {"X-Careloop-Background": "1"}


def at(minutes: float) -> datetime.datetime:
    return START + datetime.timedelta(minutes=minutes)


@pytest.fixture
def user() -> User:
    return make_user(Role.FRONT_DESK)


@pytest.fixture
def signed_in(client: Client, user: User) -> Iterator[Client]:
    with clock.frozen(START):
        force_verified_login(client, user)
    yield client


def get(client: Client, minutes: float, path: str = "/", **kwargs: object) -> int:
    with clock.frozen(at(minutes)):
        return client.get(path, secure=True, **kwargs).status_code  # type: ignore[arg-type]


def test_session_ends_after_15_minutes_without_activity(signed_in: Client) -> None:
    assert get(signed_in, 14) == 200
    assert get(signed_in, 28) == 200  # 14 minutes after the last request
    with clock.frozen(at(43.5)):
        response = signed_in.get("/patients/", secure=True)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert get(signed_in, 43.6) == 302
    expired = AuditEvent.objects.get(action="auth.session_expired")
    assert expired.actor_label == "front_desk-user"


def test_the_login_page_says_why_the_session_ended(signed_in: Client) -> None:
    with clock.frozen(at(16)):
        page = signed_in.get("/accounts/login/", secure=True, follow=True)
    assert "signed out after 15 minutes without activity" in page.content.decode()


def test_background_polling_does_not_count_as_activity(signed_in: Client) -> None:
    for minute in (5, 10, 14):
        assert get(signed_in, minute, headers=BACKGROUND) == 200
    assert get(signed_in, 15.5) == 302


def test_an_htmx_swap_after_expiry_redirects_the_whole_page(signed_in: Client) -> None:
    with clock.frozen(at(20)):
        response = signed_in.post(
            "/patients/",
            {"q": "x"},
            secure=True,
            headers={"HX-Request": "true", "HX-Current-URL": "https://testserver/patients/"},
        )
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/login/?next=%2Fpatients%2F"


def test_session_ends_after_12_hours_however_active(signed_in: Client) -> None:
    minute = 0.0
    while minute < 12 * 60 - 10:
        minute += 10
        assert get(signed_in, minute) == 200
    assert get(signed_in, 12 * 60 + 0.5) == 302
    assert AuditEvent.objects.filter(action="auth.session_expired").count() == 1


def test_session_status_reports_the_time_left_without_extending_it(signed_in: Client) -> None:
    with clock.frozen(at(5)):
        status = signed_in.get("/accounts/session/", secure=True, headers=BACKGROUND).json()
    assert status["signed_in"] and status["remaining"] == 10 * 60
    with clock.frozen(at(10)):
        kept = signed_in.post("/accounts/session/", secure=True).json()
    assert kept["remaining"] == 15 * 60
    assert get(signed_in, 24) == 200


def test_pages_carry_the_idle_warning_without_inline_script(signed_in: Client) -> None:
    with clock.frozen(at(1)):
        response = signed_in.get("/", secure=True)
    html = response.content.decode()
    # The page view is itself activity: the full 15 minutes are left.
    assert 'id="idle-warning"' in html and 'data-remaining="900"' in html
    assert 'data-warn="120"' in html
    assert "careloop/idle.js" in html
    assert "<script>" not in html
    assert response["X-Careloop-Session-Remaining"] == "900"


def test_disabling_a_user_ends_their_session_at_once(signed_in: Client, user: User) -> None:
    other = force_verified_login(Client(), user)
    assert get(signed_in, 1) == 200 and get(other, 1) == 200
    admin = make_user(Role.ADMIN)

    user_disable(actor=admin, user=user)

    assert get(signed_in, 2) == 302
    assert get(other, 2) == 302
    user_enable(actor=admin, user=user)
    assert get(other, 3) == 302  # re-enabling does not bring old sessions back
    assert AuditEvent.objects.get(action="user.disable").actor_label == admin.username


def test_user_disable_command_ends_sessions_and_tokens(signed_in: Client, user: User) -> None:
    from careloop.security.tokens import token_authenticate, token_create

    issued = token_create(user=user, actor=user)
    out = io.StringIO()
    call_command("user", "disable", user.username, stdout=out)
    assert "disabled" in out.getvalue()
    assert get(signed_in, 1) == 302
    assert token_authenticate(raw=issued.raw) is None


def test_a_new_password_ends_the_other_sessions(signed_in: Client, user: User) -> None:
    user_set_password(actor=None, user=user, password="a brand new long passphrase")
    assert get(signed_in, 1) == 302
