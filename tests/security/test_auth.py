"""Staff sign-in: password, then TOTP enrolment or a code; no PHI page before both.

Passwords are validated on every path that sets one; codes are single-use;
re-authentication guards sensitive actions and returns to them.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.oath import hotp
from django_otp.plugins.otp_totp.models import TOTPDevice

from careloop.security.audit import audit_seal
from careloop.security.auth import mfa
from careloop.security.models import AuditEvent, Role, User
from careloop.security.users import user_create, user_set_password
from tests.patients.builders import PASSWORD, make_user
from tests.security.personas import force_verified_login, sign_in, totp_code, totp_device

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_code_throttle(settings: object) -> None:
    # django-otp delays the next try after a wrong code; these tests type a wrong code
    # and then the right one at once. Throttling itself is django-otp's, tested there.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # type: ignore[attr-defined]


def password_step(client: Client, user: User, *, next_url: str = "/") -> str:
    response = client.post(
        "/accounts/login/",
        {"username": user.username, "password": PASSWORD, "next": next_url},
        secure=True,
    )
    assert response.status_code == 302
    return str(response["Location"])


def actions() -> list[str]:
    return list(AuditEvent.objects.values_list("action", flat=True))


def secret_key(html: str) -> bytes:
    """The TOTP key as the enrolment page shows it, read back like an app would."""
    import base64

    text = re.search(r"<code data-totp-secret>([A-Z2-7 ]+)</code>", html)
    assert text is not None
    compact = text[1].replace(" ", "")
    return base64.b32decode(compact + "=" * (-len(compact) % 8))


def code_at_now(key: bytes) -> str:
    import time

    return f"{hotp(key, int(time.time()) // 30):06d}"


# --- enrolment ------------------------------------------------------------------------


def test_staff_without_a_device_goes_to_enrolment_after_the_password(client: Client) -> None:
    user = make_user(Role.FRONT_DESK)
    assert password_step(client, user, next_url="/patients/") == (
        "/accounts/mfa/enrol/?next=%2Fpatients%2F"
    )


def test_enrolment_shows_a_qr_code_and_the_secret_and_a_code_confirms_it(client: Client) -> None:
    user = make_user(Role.FRONT_DESK)
    step_two = password_step(client, user, next_url="/patients/")
    page = client.get(step_two, secure=True)
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and 'aria-label="QR code"' in html
    assert "<script>" not in html and "data:image" not in html
    key = secret_key(html)
    assert key == TOTPDevice.objects.get(user=user).bin_key

    wrong = client.post(step_two, {"code": "000000"}, secure=True)
    assert "did not work" in wrong.content.decode()
    assert client.get("/patients/", secure=True).status_code == 302

    done = client.post(step_two, {"code": code_at_now(key)}, secure=True)

    assert done.status_code == 302 and done["Location"] == "/patients/"
    assert TOTPDevice.objects.get(user=user).confirmed
    assert client.get("/patients/", secure=True).status_code == 200
    assert actions() == ["auth.mfa_failed", "auth.mfa_enrolled", "auth.login", "patient.list"]


def test_enrolment_is_closed_once_a_device_is_confirmed(client: Client) -> None:
    user = make_user(Role.FRONT_DESK)
    totp_device(user)
    password_step(client, user)
    response = client.get("/accounts/mfa/enrol/", secure=True)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/mfa/verify/")
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_qr_code_carries_the_otpauth_uri_of_the_device() -> None:
    user = make_user(Role.FRONT_DESK)
    device = mfa.mfa_pending_device(user)
    uri = mfa.totp_uri(device)
    assert uri.startswith("otpauth://totp/")
    assert f"secret={mfa.totp_secret(device).replace(' ', '')}" in uri
    assert mfa.qr_svg(uri).startswith("<svg ")
    assert "█" in mfa.qr_terminal(uri)


# --- the second step --------------------------------------------------------------------


def test_enrolled_staff_must_enter_a_code_before_the_session_is_verified(client: Client) -> None:
    user = make_user(Role.CLINICIAN)
    device = totp_device(user)
    step_two = password_step(client, user)
    assert step_two == "/accounts/mfa/verify/?next=%2F"
    assert client.get("/", secure=True)["Location"].startswith("/accounts/mfa/verify/")

    refused = client.post(step_two, {"code": "123456"}, secure=True)
    assert refused.status_code == 200
    assert "did not work" in refused.content.decode()

    done = client.post(step_two, {"code": totp_code(device)}, secure=True)
    assert done.status_code == 302 and done["Location"] == "/"
    assert client.get("/", secure=True).status_code == 200
    assert actions() == ["auth.mfa_failed", "auth.login"]


def test_a_used_code_cannot_be_replayed(client: Client) -> None:
    user = make_user(Role.CLINICIAN)
    device = totp_device(user)
    code = totp_code(device)
    first = password_step(client, user)
    assert client.post(first, {"code": code}, secure=True)["Location"] == "/"
    device.refresh_from_db()
    assert device.last_t >= 0

    other = Client()
    second = password_step(other, user)
    replay = other.post(second, {"code": code}, secure=True)

    assert replay.status_code == 200
    assert "did not work" in replay.content.decode()
    assert other.get("/", secure=True).status_code == 302
    assert actions()[-1] == "auth.mfa_failed"


@pytest.mark.parametrize("path", ["/", "/patients/", "/emergency-access/"])
def test_a_session_past_the_password_only_reaches_no_staff_page(client: Client, path: str) -> None:
    user = make_user(Role.ADMIN)
    totp_device(user)
    password_step(client, user)
    response = client.get(path, secure=True)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/mfa/verify/")


def test_an_htmx_request_of_an_unverified_session_redirects_the_whole_page(
    client: Client,
) -> None:
    user = make_user(Role.FRONT_DESK)
    totp_device(user)
    password_step(client, user)
    response = client.post("/patients/", {"q": "x"}, secure=True, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/accounts/mfa/verify/")


def test_sign_in_helper_goes_through_both_steps(client: Client) -> None:
    user = make_user(Role.CARE_COORDINATOR)
    assert sign_in(client, user)["Location"] == "/"
    assert sign_in(Client(), user)["Location"] == "/"  # a second code in the same step
    assert client.get("/", secure=True).status_code == 200


def test_a_patient_account_cannot_use_the_staff_sign_in(client: Client) -> None:
    patient = make_user(Role.PATIENT, username="pat@example.org")
    response = client.post(
        "/accounts/login/", {"username": patient.username, "password": PASSWORD}, secure=True
    )
    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.actor_label == ""  # not a staff account: the typed text is not kept


# --- audit of sign-in and sign-out ----------------------------------------------------


def test_failed_login_names_a_staff_account_but_never_keeps_unknown_typed_text(
    client: Client,
) -> None:
    user = make_user(Role.FRONT_DESK)
    client.post("/accounts/login/", {"username": user.username, "password": "nope"}, secure=True)
    client.post("/accounts/login/", {"username": "Maria Gonzalez", "password": "nope"}, secure=True)
    audit_seal()  # seq is the order the events were recorded in once sealed
    named, unknown = AuditEvent.objects.filter(action="auth.login_failed").order_by("seq")
    assert (named.actor_label, named.actor_id, named.outcome) == (
        user.username,
        str(user.pk),
        "failure",
    )
    assert (unknown.actor_kind, unknown.actor_label, unknown.actor_id) == ("anonymous", "", "")
    assert not AuditEvent.objects.filter(actor_label__icontains="gonzalez").exists()


def test_logout_is_audited_and_ends_the_session(client: Client) -> None:
    user = make_user(Role.FRONT_DESK)
    force_verified_login(client, user)
    response = client.post("/accounts/logout/", secure=True)
    assert response["Location"] == "/accounts/login/"
    assert client.get("/", secure=True).status_code == 302
    assert AuditEvent.objects.get(action="auth.logout").actor_label == user.username


# --- re-authentication ------------------------------------------------------------------


@pytest.mark.urls("tests.security.reauth_urls")
def test_sensitive_action_asks_for_password_and_code_again_and_returns(client: Client) -> None:
    user = make_user(Role.ADMIN)
    device = totp_device(user)
    force_verified_login(client, user)

    asked = client.get("/test-sensitive/", secure=True)
    assert asked.status_code == 302
    assert asked["Location"] == "/accounts/reauth/?next=%2Ftest-sensitive%2F"
    page = client.get(asked["Location"], secure=True)
    assert "Confirm it" in page.content.decode()

    wrong = client.post(
        asked["Location"], {"password": "wrong password!", "code": totp_code(device)}, secure=True
    )
    assert wrong.status_code == 200
    done = client.post(
        asked["Location"], {"password": PASSWORD, "code": totp_code(device)}, secure=True
    )
    assert done.status_code == 302 and done["Location"] == "/test-sensitive/"
    assert client.get("/test-sensitive/", secure=True).content == b"exported"
    audit_seal()
    reauths = AuditEvent.objects.filter(action="auth.reauth").order_by("seq")
    assert [event.outcome for event in reauths] == ["failure", "success"]


@pytest.mark.urls("tests.security.reauth_urls")
def test_re_authentication_lasts_five_minutes(client: Client) -> None:
    import datetime

    from careloop.core import clock

    user = make_user(Role.ADMIN)
    device = totp_device(user)
    start = clock.now()
    with clock.frozen(start):
        force_verified_login(client, user)
        client.post(
            "/accounts/reauth/", {"password": PASSWORD, "code": totp_code(device)}, secure=True
        )
    with clock.frozen(start + datetime.timedelta(minutes=4)):
        assert client.get("/test-sensitive/", secure=True).status_code == 200
    with clock.frozen(start + datetime.timedelta(minutes=6)):
        assert client.get("/test-sensitive/", secure=True).status_code == 302


# --- passwords ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["short1!", "password1234", "123456789012", "front_desk-user1"]
)
def test_every_password_path_refuses_short_common_or_look_alike_passwords(
    password: str,
) -> None:
    user = make_user(Role.FRONT_DESK)
    with pytest.raises(ValidationError):
        user_set_password(actor=None, user=user, password=password)
    with pytest.raises(ValidationError):
        user_create(actor=None, username="front_desk-user2", role=Role.CLINICIAN, password=password)
    assert not User.objects.filter(username="front_desk-user2").exists()


def test_createsuperuser_without_a_prompt_validates_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "password1234")
    with pytest.raises(CommandError, match="too common"):
        call_command(
            "createsuperuser", username="root", email="root@example.org", interactive=False
        )
    assert not User.objects.filter(username="root").exists()
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long and unusual passphrase")
    call_command(
        "createsuperuser",
        username="root",
        email="root@example.org",
        interactive=False,
        stdout=io.StringIO(),
    )
    assert User.objects.get(username="root").check_password("a long and unusual passphrase")


def test_user_command_creates_an_account_with_a_validated_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("qwerty\n"))
    with pytest.raises(CommandError, match="password was refused"):
        call_command("user", "create", "dana", "--role", "front_desk", "--password-stdin")
    monkeypatch.setattr("sys.stdin", io.StringIO("river stone lantern 42\n"))
    out = io.StringIO()
    call_command("user", "create", "dana", "--role", "front_desk", "--password-stdin", stdout=out)
    user = User.objects.get(username="dana")
    assert user.role == Role.FRONT_DESK and user.check_password("river stone lantern 42")
    assert AuditEvent.objects.get(action="user.create").actor_kind == "system"


def test_demo_users_get_a_confirmed_device_whose_secret_is_printed(
    tmp_path: object, settings: object
) -> None:
    from careloop.security.demo_users import demo_sign_in_text, demo_users_ensure

    settings.VAR_DIR = tmp_path  # type: ignore[attr-defined]
    sign_ins = demo_users_ensure()
    text = demo_sign_in_text(sign_ins)
    for sign_in_row in sign_ins:
        device = mfa.mfa_device(User.objects.get(username=sign_in_row.username))
        assert device is not None
        assert mfa.totp_secret(device).replace(" ", "") == sign_in_row.totp_secret
        assert f"TOTP secret: {sign_in_row.totp_secret}" in text
    assert "█" in text
    assert demo_users_ensure() == sign_ins  # a second start prints the same
