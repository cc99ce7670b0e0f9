"""Object-level scope, minimum necessary within a page, and audited refusals."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client

from careloop.core.errors import NotFound, PermissionDenied
from careloop.patients.selectors import patient_get, patient_search
from careloop.security.models import AuditEvent, Role
from tests.patients.builders import add_coverage, add_fact
from tests.security.clinic import Clinic, make_clinic, staff_user
from tests.security.personas import force_verified_login as sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic() -> Clinic:
    return make_clinic()


def listed(client: Client) -> set[str]:
    html = client.get("/patients/", secure=True).content.decode()
    return set(re.findall(r'<a href="/patients/[0-9a-f-]+/">([^<]+)</a>', html))


def test_clinician_sees_only_the_patients_of_her_care_team(client: Client, clinic: Clinic) -> None:
    sign_in(client, staff_user(Role.CLINICIAN, provider=clinic.chen))
    assert listed(client) == {"Alvarez, Ana"}
    assert client.get(f"/patients/{clinic.ana.id}/", secure=True).status_code == 200
    assert client.get(f"/patients/{clinic.ben.id}/", secure=True).status_code == 404


def test_clinician_sees_the_patients_of_her_location(client: Client, clinic: Clinic) -> None:
    sign_in(client, staff_user(Role.CLINICIAN, location=clinic.lakeside))
    assert listed(client) == {"Brooks, Ben", "Castro, Cleo"}


def test_clinician_with_a_team_and_a_location_sees_both(client: Client, clinic: Clinic) -> None:
    sign_in(client, staff_user(Role.CLINICIAN, provider=clinic.chen, location=clinic.lakeside))
    assert listed(client) == {"Alvarez, Ana", "Brooks, Ben", "Castro, Cleo"}


def test_clinician_without_a_team_or_location_sees_nobody(client: Client, clinic: Clinic) -> None:
    sign_in(client, staff_user(Role.CLINICIAN))
    assert listed(client) == set()


def test_search_never_finds_a_patient_outside_the_scope(clinic: Clinic) -> None:
    clinician = staff_user(Role.CLINICIAN, provider=clinic.chen)
    assert patient_search(actor=clinician, query="Brooks").total == 0
    assert patient_search(actor=clinician, query="1971-05-06").total == 0
    assert patient_search(actor=clinician, query="Alvarez").total == 1


def test_out_of_scope_and_missing_patients_raise_the_same_error(clinic: Clinic) -> None:
    clinician = staff_user(Role.CLINICIAN, provider=clinic.chen)
    for patient_id in (clinic.ben.id, uuid.uuid4()):
        with pytest.raises(NotFound):
            patient_get(actor=clinician, patient_id=patient_id)


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ADMIN, Role.CARE_COORDINATOR])
def test_directory_roles_and_coordinators_see_the_whole_practice(
    client: Client, clinic: Clinic, role: str
) -> None:
    sign_in(client, staff_user(role))
    assert listed(client) == {"Alvarez, Ana", "Brooks, Ben", "Castro, Cleo"}


def test_front_desk_patient_page_has_coverage_but_no_clinical_summary(
    client: Client, clinic: Clinic
) -> None:
    add_coverage(clinic.ana, payer_category="commercial", payer_name="Acme Health")
    add_fact(clinic.ana, "condition", "44054006")
    sign_in(client, staff_user(Role.FRONT_DESK))
    html = client.get(f"/patients/{clinic.ana.id}/", secure=True).content.decode()
    assert "Acme Health" in html
    assert "Clinical summary" not in html
    assert 'data-kind="condition"' not in html


def test_clinician_patient_page_has_the_clinical_summary_but_no_coverage(
    client: Client, clinic: Clinic
) -> None:
    add_coverage(clinic.ana, payer_category="commercial", payer_name="Acme Health")
    add_fact(clinic.ana, "condition", "44054006")
    sign_in(client, staff_user(Role.CLINICIAN, provider=clinic.chen))
    html = client.get(f"/patients/{clinic.ana.id}/", secure=True).content.decode()
    assert 'data-kind="condition"' in html
    assert "Acme Health" not in html
    assert "Coverage" not in html


def test_a_refused_page_is_audited_without_names(client: Client, clinic: Clinic) -> None:
    analyst = staff_user(Role.ANALYST)
    sign_in(client, analyst)
    assert client.get(f"/patients/{clinic.ana.id}/", secure=True).status_code == 403
    event = AuditEvent.objects.get(action="access.denied")
    assert event.outcome == "denied"
    assert event.actor_id == str(analyst.pk)
    assert event.resource_type == "demographics"
    assert event.fields == ["read"]
    assert event.source_ip == "127.0.0.1"
    for value in (event.resource_type, event.resource_id, event.actor_label, *event.fields):
        assert "Alvarez" not in value


def test_require_in_a_selector_refuses_and_audits_with_the_patient_id(clinic: Clinic) -> None:
    marketing = staff_user(Role.MARKETING)
    with pytest.raises(PermissionDenied):
        patient_get(actor=marketing, patient_id=clinic.ana.id)
    event = AuditEvent.objects.get(action="access.denied")
    assert event.patient_id == clinic.ana.id


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.CLINICIAN, Role.ANALYST])
def test_home_page_shows_the_practice_figures_to_operational_roles(
    client: Client, role: str
) -> None:
    sign_in(client, staff_user(role))
    response = client.get("/", secure=True)
    assert response.status_code == 200
    assert 'data-stat="active-patients"' in response.content.decode()


def test_marketing_home_page_has_the_practice_figures_but_no_patient_link(
    client: Client,
) -> None:
    sign_in(client, staff_user(Role.MARKETING))
    html = client.get("/", secure=True).content.decode()
    assert 'data-stat="active-patients"' in html
    assert 'href="/patients/"' not in html
