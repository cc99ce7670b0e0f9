"""The own-record rule: a signed-in patient sees their own record and nobody else's."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from careloop.core import clock
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount
from careloop.security.models import Role
from tests.patients.builders import add_appointment, add_contact, make_location, make_provider
from tests.portal.people import ana, registered, sign_in
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db


def _ben() -> Patient:
    """Another patient, with his own portal account."""
    from tests.patients.builders import make_patient

    ben = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    add_contact(ben, "email", "ben@example.org", verified=True, can_email=True)
    user = staff_user(Role.PATIENT, "ben-portal")
    PortalAccount.objects.create(user=user, patient=ben, created_at=clock.now())
    return ben


def test_a_patient_sees_only_their_own_appointments() -> None:
    patient = ana()
    ben = _ben()
    main = make_location("Main Street Clinic")
    chen = make_provider(main, "Dr. Maya Chen")
    okafor = make_provider(make_location("Lakeside Clinic"), "Dr. Ike Okafor")
    soon = clock.now() + datetime.timedelta(days=3)
    add_appointment(patient, chen, soon)
    add_appointment(ben, okafor, soon + datetime.timedelta(hours=2))
    add_appointment(patient, chen, clock.now() - datetime.timedelta(days=3))  # past
    registered(patient)
    client = Client()
    sign_in(client)

    page = client.get("/portal/", secure=True).content.decode()

    assert "Welcome, Ana" in page
    assert "Dr. Maya Chen" in page and "Main Street Clinic" in page
    assert "Ben" not in page and "Okafor" not in page and "Lakeside" not in page
    assert page.count('class="card"') == 1


def test_staff_and_unlinked_patient_users_are_refused() -> None:
    for user in (staff_user(Role.FRONT_DESK, "desk"), staff_user(Role.PATIENT, "no-record")):
        client = force_verified_login(Client(), user)
        assert client.get("/portal/", secure=True).status_code == 403


def test_a_patient_cannot_open_staff_pages() -> None:
    patient = ana()
    ben = _ben()
    registered(patient)
    client = Client()
    sign_in(client)

    assert client.get(f"/patients/{ben.pk}/", secure=True).status_code == 403
    assert client.get(f"/patients/{patient.pk}/", secure=True).status_code == 403


def test_a_visitor_is_sent_to_the_portal_sign_in() -> None:
    response = Client().get("/portal/", secure=True)
    assert response.status_code == 302 and response["Location"] == "/portal/signin/"
