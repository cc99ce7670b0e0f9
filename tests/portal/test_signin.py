"""Portal sign-in: password or a one-time e-mailed link, TOTP when set up, the staff
lockout and session rules."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from careloop.core import clock
from careloop.security.models import AuditEvent
from tests.portal.people import ANA_EMAIL, ana, outbox, registered, sent_link_token, sign_in
from tests.security.personas import totp_code, totp_device

pytestmark = pytest.mark.django_db

HOME, SIGNIN, CODE = "/portal/", "/portal/signin/", "/portal/signin/code/"
LINK, OPEN = "/portal/signin/link/", "/portal/signin/link/open/"
NO_MATCH = "did not match"


def _signed_in(client: Client) -> bool:
    return client.get(HOME, secure=True).status_code == 200


def test_password_sign_in_opens_the_portal() -> None:
    patient = ana()
    registered(patient)
    client = Client()

    response = sign_in(client)

    assert response.status_code == 302 and response["Location"] == HOME
    assert _signed_in(client)
    assert AuditEvent.objects.filter(action="auth.login", actor_kind="patient").exists()


def test_a_wrong_password_and_an_unknown_contact_get_the_same_answer() -> None:
    patient = ana()
    registered(patient)

    wrong = sign_in(Client(), password="not my password at all")
    unknown = sign_in(Client(), contact="nobody@example.org")

    assert wrong.status_code == unknown.status_code == 200
    assert NO_MATCH in wrong.content.decode() and NO_MATCH in unknown.content.decode()


def test_totp_is_asked_for_when_the_patient_set_it_up() -> None:
    patient = ana()
    user = registered(patient)
    device = totp_device(user)
    client = Client()

    response = sign_in(client)
    assert response["Location"] == CODE
    assert not _signed_in(client)
    response = client.post(CODE, {"code": totp_code(device)}, secure=True)

    assert response["Location"] == HOME
    assert _signed_in(client)


def test_a_wrong_totp_code_signs_nobody_in() -> None:
    patient = ana()
    user = registered(patient)
    device = totp_device(user)
    client = Client()
    sign_in(client)
    wrong = f"{(int(totp_code(device)) + 1) % 10**6:06d}"

    response = client.post(CODE, {"code": wrong}, secure=True)

    assert "That code did not work" in response.content.decode()
    assert not _signed_in(client)
    assert AuditEvent.objects.filter(action="auth.mfa_failed").exists()


def test_repeated_failures_lock_the_account(settings: Any) -> None:
    patient = ana()
    registered(patient)

    for _ in range(settings.LOCKOUT_FAILURES):
        sign_in(Client(), password="guessing wrong again")
    client = Client()
    response = sign_in(client)

    assert "locked" in response.content.decode()
    assert not _signed_in(client)
    assert AuditEvent.objects.filter(action="auth.lockout").exists()


def test_sign_in_attempts_are_rate_limited(settings: Any) -> None:
    settings.RATE_LIMITS = settings.RATE_LIMITS | {"login.username": (2, 900)}
    answers = [sign_in(Client(), contact="x@example.org").status_code for _ in range(3)]
    assert answers == [200, 200, 429]


def test_a_sign_in_link_works_once() -> None:
    patient = ana()
    registered(patient)
    client = Client()

    assert client.post(LINK, {"email": ANA_EMAIL}, secure=True).status_code == 200
    token = sent_link_token(patient)
    # Opening the link (a mail scanner does) uses nothing; the button does.
    page = client.get(OPEN, {"t": token}, secure=True)
    assert page.status_code == 200 and not _signed_in(client)
    response = client.post(OPEN, {"t": token}, secure=True)
    assert response["Location"] == HOME and _signed_in(client)

    again = Client()
    response = again.post(OPEN, {"t": token}, secure=True)
    assert response.status_code == 200
    assert "expired or was already used" in response.content.decode()
    assert not _signed_in(again)


def test_a_sign_in_link_expires_after_15_minutes() -> None:
    patient = ana()
    registered(patient)
    Client().post(LINK, {"email": ANA_EMAIL}, secure=True)
    token = sent_link_token(patient)
    client = Client()

    with clock.frozen(clock.now() + datetime.timedelta(minutes=16)):
        response = client.post(OPEN, {"t": token}, secure=True)

    assert "expired or was already used" in response.content.decode()
    assert not _signed_in(client)


def test_a_tampered_link_changes_nothing() -> None:
    patient = ana()
    registered(patient)
    Client().post(LINK, {"email": ANA_EMAIL}, secure=True)
    token = sent_link_token(patient)
    client = Client()

    response = client.post(OPEN, {"t": token[:-2] + "xx"}, secure=True)

    assert "expired or was already used" in response.content.decode()
    assert client.post(OPEN, {"t": token}, secure=True)["Location"] == HOME


def test_a_link_asks_for_totp_too() -> None:
    patient = ana()
    user = registered(patient)
    device = totp_device(user)
    client = Client()
    client.post(LINK, {"email": ANA_EMAIL}, secure=True)

    response = client.post(OPEN, {"t": sent_link_token(patient)}, secure=True)

    assert response["Location"] == CODE and not _signed_in(client)
    client.post(CODE, {"code": totp_code(device)}, secure=True)
    assert _signed_in(client)


def test_a_link_for_an_address_not_on_file_sends_nothing_and_says_the_same() -> None:
    patient = ana()
    registered(patient)

    known = Client().post(LINK, {"email": ANA_EMAIL}, secure=True).content.decode()
    unknown = Client().post(LINK, {"email": "nobody@example.org"}, secure=True).content.decode()

    assert len(outbox(patient, "portal-signin-link")) == 1
    assert "If that address is on file" in known and "If that address is on file" in unknown


def test_the_link_token_reaches_no_log_and_no_audit_event(caplog: Any) -> None:
    patient = ana()
    registered(patient)
    client = Client()
    with caplog.at_level(logging.DEBUG):
        client.post(LINK, {"email": ANA_EMAIL}, secure=True)
        token = sent_link_token(patient)
        client.get(OPEN, {"t": token}, secure=True)
        client.post(OPEN, {"t": token}, secure=True)
        client.post(OPEN, {"t": token}, secure=True)

    assert token not in caplog.text
    for event in AuditEvent.objects.all():
        assert token not in f"{event.resource_id} {event.fields} {event.actor_id}"


def test_the_session_ends_after_15_idle_minutes() -> None:
    patient = ana()
    registered(patient)
    client = Client()
    sign_in(client)

    with clock.frozen(clock.now() + datetime.timedelta(minutes=14)):
        assert _signed_in(client)
    with clock.frozen(clock.now() + datetime.timedelta(minutes=30)):
        response = client.get(HOME, secure=True)

    assert response.status_code == 302 and response["Location"] == SIGNIN
    assert AuditEvent.objects.filter(action="auth.session_expired").exists()


def test_signing_out_ends_the_session() -> None:
    patient = ana()
    registered(patient)
    client = Client()
    sign_in(client)

    response = client.post("/portal/signout/", secure=True)

    assert response["Location"] == SIGNIN
    assert not _signed_in(client)


def test_a_patient_can_turn_on_totp_and_is_then_asked_for_it() -> None:
    patient = ana()
    user = registered(patient)
    client = Client()
    sign_in(client)

    page = client.get("/portal/security/", secure=True).content.decode()
    assert "<svg" in page
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    client.post("/portal/security/", {"code": totp_code(device)}, secure=True)

    device.refresh_from_db()
    assert device.confirmed
    assert sign_in(Client())["Location"] == CODE
