"""Every staff read of patient data leaves an audit event; search text never does."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from careloop.core.clock import now
from careloop.patients.models import Patient
from careloop.security.models import AuditEvent, Role, User
from tests.security.personas import force_verified_login


@pytest.fixture
def front_desk(client: Client) -> User:
    user = User.objects.create_user(username="fd.lee", password="x" * 20, role=Role.FRONT_DESK)
    force_verified_login(client, user)
    return user


def make_patient() -> Patient:
    patient = Patient(
        given_name="Imani",
        family_name="Zielinski",
        birth_date=datetime.date(1977, 7, 7),
        created_at=now(),
        updated_at=now(),
    )
    patient.save()
    return patient


@pytest.mark.django_db
def test_opening_a_patient_page_is_audited_with_the_patient_and_the_address(
    client: Client, front_desk: User
) -> None:
    patient = make_patient()
    response = client.get(f"/patients/{patient.pk}/", secure=True, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="patient.view")
    assert (event.patient_id, event.actor_label, event.source_ip) == (
        patient.pk,
        "fd.lee",
        "10.1.2.3",
    )
    assert "coverage" in event.fields and "clinical_summary" not in event.fields


@pytest.mark.django_db
def test_a_search_is_audited_without_the_text_that_was_searched(
    client: Client, front_desk: User
) -> None:
    make_patient()
    response = client.post("/patients/", {"q": "Zielinski"}, secure=True)
    assert response.status_code == 200
    assert b"Zielinski" in response.content
    event = AuditEvent.objects.get(action="patient.search")
    assert event.resource_id == "name:page=1:shown=1"
    stored = " ".join(
        str(value)
        for value in AuditEvent.objects.values_list(
            "actor_id", "actor_label", "resource_type", "resource_id", "fields"
        )
    )
    assert "zielinski" not in stored.lower()


@pytest.mark.django_db
def test_the_unfiltered_list_is_audited_as_a_list(client: Client, front_desk: User) -> None:
    make_patient()
    assert client.get("/patients/", secure=True).status_code == 200
    assert AuditEvent.objects.filter(action="patient.list").count() == 1
