"""Portal personas and steps through the real pages: a patient on file with a verified
e-mail address, registering, signing in, and the codes and links the outbox carried."""

from __future__ import annotations

import datetime
import re
from urllib.parse import parse_qs, urlsplit

from django.http.response import HttpResponseBase
from django.test import Client

from careloop.outreach.models import Message
from careloop.outreach.templates import templates_install_builtin
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount
from careloop.security.models import User
from tests.patients.builders import PASSWORD, add_contact, make_patient

ANA_EMAIL = "ana.alvarez@example.org"
ANA_BORN = datetime.date(1960, 2, 3)


def ana() -> Patient:
    """A patient on file, with a verified e-mail address she may be e-mailed at."""
    templates_install_builtin()
    patient = make_patient("Ana", "Alvarez", ANA_BORN)
    add_contact(patient, "email", ANA_EMAIL, verified=True, can_email=True)
    return patient


def register_details(**overrides: str) -> dict[str, str]:
    details = {
        "given_name": "Ana",
        "family_name": "Alvarez",
        "birth_date": ANA_BORN.isoformat(),
        "contact": ANA_EMAIL,
    }
    return details | overrides


def register_start(client: Client, **overrides: str) -> HttpResponseBase:
    return client.post("/portal/register/", register_details(**overrides), secure=True)


def register_finish(client: Client, code: str, password: str = PASSWORD) -> HttpResponseBase:
    data = {"code": code, "password": password, "password_again": password}
    return client.post("/portal/register/verify/", data, secure=True)


def outbox(patient: Patient, template: str) -> list[Message]:
    return list(
        Message.objects.filter(patient=patient, template_id=template).order_by("created_at")
    )


def sent_code(patient: Patient) -> str:
    """The 6-digit code in the latest registration message to `patient`."""
    found = re.search(r"\b(\d{6})\b", outbox(patient, "portal-verify-code")[-1].body)
    assert found is not None
    return found.group(1)


def sent_link_token(patient: Patient) -> str:
    """The token of the latest sign-in link e-mailed to `patient`."""
    body = outbox(patient, "portal-signin-link")[-1].body
    found = re.search(r"https://\S+", body)
    assert found is not None
    return parse_qs(urlsplit(found.group(0)).query)["t"][0]


def registered(patient: Patient) -> User:
    """`patient` with a portal account (password `PASSWORD`), made through the pages."""
    client = Client()
    register_start(client)
    response = register_finish(client, sent_code(patient))
    assert response.status_code == 302, response
    return PortalAccount.objects.get(patient=patient).user


def sign_in(client: Client, contact: str = ANA_EMAIL, password: str = PASSWORD) -> HttpResponseBase:
    data = {"contact": contact, "password": password}
    return client.post("/portal/signin/", data, secure=True)
