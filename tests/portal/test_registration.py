"""Self-registration: name, birth date and a contact on file, then a code sent there."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.test import Client, RequestFactory

from careloop.core import clock
from careloop.patients.models import Patient
from careloop.portal.accounts import register_complete
from careloop.portal.models import PortalAccount, PortalChallenge
from careloop.security.models import AuditEvent, Role
from tests.patients.builders import add_contact, make_patient
from tests.portal.people import (
    ana,
    outbox,
    register_finish,
    register_start,
    registered,
    sent_code,
)

pytestmark = pytest.mark.django_db

VERIFY = "/portal/register/verify/"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


def _page(client: Client) -> str:
    """The code page as this visitor sees it, less its CSRF token."""
    return CSRF.sub("", client.get(VERIFY, secure=True).content.decode())


def test_registration_links_the_existing_record_and_creates_no_patient() -> None:
    patient = ana()
    patients_before = Patient.objects.count()
    client = Client()

    response = register_start(client)
    assert response.status_code == 302 and response["Location"] == VERIFY
    [message] = outbox(patient, "portal-verify-code")
    assert message.channel == "email"
    response = register_finish(client, sent_code(patient))

    assert response.status_code == 302 and response["Location"] == "/portal/"
    account = PortalAccount.objects.get(patient=patient)
    assert account.user.role == Role.PATIENT
    assert Patient.objects.count() == patients_before
    home = client.get("/portal/", secure=True)
    assert home.status_code == 200
    assert "Welcome, Ana" in home.content.decode()
    assert AuditEvent.objects.filter(
        action="portal.register", patient_id=patient.pk, outcome="success"
    ).exists()


def test_a_record_with_an_account_gets_no_second_one() -> None:
    patient = ana()
    registered(patient)

    client = Client()
    response = register_start(client)

    assert response["Location"] == VERIFY
    assert len(outbox(patient, "portal-verify-code")) == 1
    assert PortalAccount.objects.filter(patient=patient).count() == 1


@pytest.mark.parametrize(
    "wrong",
    [
        {"birth_date": "1960-02-04"},
        {"contact": "someone.else@example.org"},
        {"family_name": "Alvarado"},
        {"given_name": "Nobody", "family_name": "Atall", "contact": "nobody@example.org"},
    ],
    ids=["birth date", "contact", "name", "no such person"],
)
def test_details_that_do_not_match_get_the_same_answer_as_a_match(wrong: dict[str, str]) -> None:
    patient = ana()
    matched, refused = Client(), Client()

    right = register_start(matched)
    other = register_start(refused, **wrong)

    assert (right.status_code, right["Location"]) == (other.status_code, other["Location"])
    assert _page(matched) == _page(refused)
    assert len(outbox(patient, "portal-verify-code")) == 1
    # Guessing a code for a record that did not match opens nothing.
    response = register_finish(refused, sent_code(patient))
    assert response.status_code == 200
    assert "That code did not work" in response.content.decode()
    assert not PortalAccount.objects.exists()


def test_two_records_alike_match_neither() -> None:
    patient = ana()
    twin = make_patient("Ana", "Alvarez", patient.birth_date)
    add_contact(twin, "email", "ana.alvarez@example.org", verified=True, can_email=True)

    register_start(Client())

    assert not outbox(patient, "portal-verify-code")
    assert not outbox(twin, "portal-verify-code")


def test_an_unverified_contact_is_not_used() -> None:
    patient = ana()
    add_contact(patient, "email", "old.ana@example.org", verified=False, can_email=True)

    register_start(Client(), contact="old.ana@example.org")

    assert not outbox(patient, "portal-verify-code")


def test_an_expired_code_is_refused() -> None:
    patient = ana()
    client = Client()
    register_start(client)
    code = sent_code(patient)

    with clock.frozen(clock.now() + datetime.timedelta(minutes=16)):
        response = register_finish(client, code)

    assert "That code did not work" in response.content.decode()
    assert not PortalAccount.objects.exists()


def test_a_code_works_once() -> None:
    patient = ana()
    client = Client()
    register_start(client)
    code = sent_code(patient)
    assert register_finish(client, code).status_code == 302
    user = PortalAccount.objects.get(patient=patient).user

    challenge = PortalChallenge.objects.get(patient=patient)
    replayed = register_complete(
        request=RequestFactory().post(VERIFY),
        challenge_id=challenge.pk,
        code=code,
        password="another long passphrase 7",
    )

    assert replayed is None
    assert PortalAccount.objects.get(patient=patient).user == user
    assert PortalAccount.objects.count() == 1


def test_wrong_codes_use_up_the_code() -> None:
    patient = ana()
    client = Client()
    register_start(client)
    code = sent_code(patient)
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    for _ in range(5):
        assert register_finish(client, wrong).status_code == 200
    response = register_finish(client, code)

    assert "That code did not work" in response.content.decode()
    assert not PortalAccount.objects.exists()


def test_a_weak_password_is_refused_with_the_reason() -> None:
    patient = ana()
    client = Client()
    register_start(client)

    response = register_finish(client, sent_code(patient), password="short")

    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not PortalAccount.objects.exists()


def test_registration_attempts_are_rate_limited(settings: Any) -> None:
    settings.RATE_LIMITS = settings.RATE_LIMITS | {"portal.register.ip": (2, 3600)}
    patient = ana()
    client = Client()

    answers = [register_start(client, birth_date="1999-01-01").status_code for _ in range(3)]

    assert answers == [302, 302, 429]
    assert not outbox(patient, "portal-verify-code")


def test_the_code_goes_by_text_to_a_mobile_on_file() -> None:
    patient = ana()
    add_contact(patient, "phone", "+1 217 555 0142", verified=True, can_sms=True)

    register_start(Client(), contact="(217) 555-0142")

    [message] = outbox(patient, "portal-verify-code")
    assert message.channel == "sms"


def test_the_registration_pages_speak_spanish() -> None:
    client = Client()

    page = client.get("/portal/register/?lang=es", secure=True)
    later = client.get("/portal/signin/", secure=True)

    assert '<html lang="es">' in page.content.decode()
    assert "Cree su cuenta del portal" in page.content.decode()
    assert "Inicie sesión en su portal del paciente" in later.content.decode()
    assert (
        "Sign in to your patient portal"
        in Client().get("/portal/signin/", secure=True).content.decode()
    )
