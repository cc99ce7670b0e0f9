"""Tags, care team and caregivers: edited on their pages, audited, on the timeline."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from careloop.patients.household import relationships_in_force
from careloop.patients.models import Patient, PatientRelationship, PatientTag, TimelineEvent
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import make_location, make_patient, make_provider, make_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient() -> Patient:
    return make_patient("Rosa", "Diaz", datetime.date(1938, 6, 1))


def as_role(role: str, username: str | None = None) -> tuple[Client, User]:
    client, user = Client(), make_user(role, username)
    force_verified_login(client, user)
    return client, user


def test_tags_are_set_normalised_and_shown_on_the_page(patient: Patient) -> None:
    client, _ = as_role(Role.FRONT_DESK)
    url = f"/patients/{patient.id}/care-team/"
    data = {"action": "tags", "tags": "VIP, interpreter-needed, vip"}
    assert client.post(url, data, secure=True).status_code == 302
    assert list(PatientTag.objects.values_list("tag", flat=True)) == ["interpreter-needed", "vip"]
    assert TimelineEvent.objects.get(patient=patient).summary == "Tags changed"
    assert AuditEvent.objects.get(action="patient.update").fields == ["tags"]
    html = client.get(f"/patients/{patient.id}/", secure=True).content.decode()
    assert "interpreter-needed" in html
    client.post(url, {"action": "tags", "tags": "vip"}, secure=True)
    assert list(PatientTag.objects.values_list("tag", flat=True)) == ["vip"]


def test_a_tag_with_spaces_or_symbols_is_a_form_error(patient: Patient) -> None:
    client, _ = as_role(Role.FRONT_DESK)
    response = client.post(
        f"/patients/{patient.id}/care-team/", {"action": "tags", "tags": "needs ride!"}, secure=True
    )
    assert response.status_code == 200
    assert "Tags use letters, digits, hyphens and underscores only." in response.content.decode()
    assert not PatientTag.objects.exists()


def test_the_care_team_with_a_coordinator_is_saved_and_shown(patient: Patient) -> None:
    client, _ = as_role(Role.FRONT_DESK)
    coordinator = make_user(Role.CARE_COORDINATOR, "coord.amy", first_name="Amy", last_name="Li")
    location = make_location()
    provider = make_provider(location)
    data = {
        "action": "team",
        "primary_provider": provider.pk,
        "home_location": location.pk,
        "care_coordinator": coordinator.pk,
    }
    assert client.post(f"/patients/{patient.id}/care-team/", data, secure=True).status_code == 302
    patient.refresh_from_db()
    assert patient.care_coordinator == coordinator and patient.primary_provider == provider
    html = client.get(f"/patients/{patient.id}/", secure=True).content.decode()
    assert "Amy Li" in html
    assert TimelineEvent.objects.get(patient=patient).summary == "Care team changed"


def test_a_non_coordinator_cannot_be_made_coordinator(patient: Patient) -> None:
    client, _ = as_role(Role.FRONT_DESK)
    marketer = make_user(Role.MARKETING, "mk")
    data = {"action": "team", "care_coordinator": marketer.pk}
    response = client.post(f"/patients/{patient.id}/care-team/", data, secure=True)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_a_caregiver_who_is_not_a_patient_is_added_with_permissions_and_ended(
    patient: Patient,
) -> None:
    client, user = as_role(Role.FRONT_DESK)
    url = f"/patients/{patient.id}/household/"
    data = {
        "action": "add",
        "code": "proxy",
        "related_name": "Lucia Diaz",
        "period_start": "2026-01-05",
        "may_schedule": "on",
        "may_message": "on",
    }
    assert client.post(url, data, secure=True).status_code == 302
    relationship = PatientRelationship.objects.get(patient=patient)
    assert relationship.related_name == "Lucia Diaz"
    raw = PatientRelationship.objects.values_list("related_name", flat=True).get()
    assert b"Lucia" not in bytes(raw)
    assert (relationship.may_schedule, relationship.may_sign_consents) == (True, False)
    on = datetime.date(2026, 2, 1)
    assert list(relationships_in_force(patient=patient, on=on)) == [relationship]
    assert "Lucia Diaz" in client.get(url, secure=True).content.decode()
    ending = {"action": "end", "relationship": str(relationship.id)}
    assert client.post(url, ending, secure=True).status_code == 302
    relationship.refresh_from_db()
    assert relationship.period_end is not None
    summaries = list(TimelineEvent.objects.values_list("summary", flat=True))
    assert summaries == ["Proxy ended", "Proxy added"]
    assert AuditEvent.objects.filter(action="patient.relationship_end").count() == 1
    assert "Lucia" not in " ".join(summaries)


def test_a_household_member_who_is_a_patient_is_linked(patient: Patient) -> None:
    client, _ = as_role(Role.FRONT_DESK)
    daughter = make_patient("Lucia", "Diaz", datetime.date(1970, 2, 2))
    data = {
        "code": "child",
        "related_patient": str(daughter.id),
        "period_start": "2020-01-01",
        "may_view_record": "on",
    }
    assert client.post(f"/patients/{patient.id}/household/", data, secure=True).status_code == 302
    assert PatientRelationship.objects.get().related_patient == daughter


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "Give either a patient id or a name, not both."),
        ({"related_name": "X", "related_patient": "self"}, "Give either a patient id or a name"),
        ({"related_patient": "self"}, "A patient cannot be their own caregiver."),
        ({"related_name": "Someone", "period_start": "soon"}, "Enter a valid date."),
    ],
)
def test_bad_relationships_are_form_errors(
    patient: Patient, changes: dict[str, str], message: str
) -> None:
    client, _ = as_role(Role.FRONT_DESK)
    data = {"code": "caregiver", "period_start": "2026-01-01"} | {
        k: (str(patient.id) if v == "self" else v) for k, v in changes.items()
    }
    response = client.post(f"/patients/{patient.id}/household/", data, secure=True)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PatientRelationship.objects.exists()


@pytest.mark.parametrize("page", ["care-team", "household"])
@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.MARKETING, Role.AUDITOR])
def test_roles_without_demographics_write_are_refused(
    patient: Patient, page: str, role: str
) -> None:
    client, _ = as_role(role)
    url = f"/patients/{patient.id}/{page}/"
    assert client.get(url, secure=True).status_code in (403, 404)
    data = {"action": "tags", "tags": "vip", "code": "proxy", "related_name": "X"}
    assert client.post(url, data | {"period_start": "2026-01-01"}, secure=True).status_code in (
        403,
        404,
    )
    assert not PatientTag.objects.exists() and not PatientRelationship.objects.exists()
