"""The patient page's lifecycle stage (with its reason and a Recompute button) and timeline."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from careloop.core import clock
from careloop.patients.models import LifecycleStage, Patient, StageChange, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import make_patient, make_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient() -> Patient:
    return make_patient(
        "Ana",
        "García",
        datetime.date(1962, 3, 14),
        lifecycle_stage=LifecycleStage.DORMANT,
        lifecycle_reason="no contact since 2024-01-02; the practice's threshold is 18 months",
    )


def signed_in(client: Client, role: str, username: str | None = None) -> User:
    user = make_user(role, username)
    force_verified_login(client, user)
    return user


def page(client: Client, patient: Patient) -> str:
    response = client.get(f"/patients/{patient.id}/", secure=True)
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_the_stage_with_its_reason(client: Client, patient: Patient) -> None:
    signed_in(client, Role.FRONT_DESK)
    html = page(client, patient)
    assert "Dormant" in html
    assert "the practice&#x27;s threshold is 18 months" in html


def test_the_recompute_button_is_offered_only_to_roles_that_may_write(
    client: Client, patient: Patient
) -> None:
    signed_in(client, Role.FRONT_DESK)
    assert "lifecycle/recompute/" in page(client, patient)
    other = Client()
    signed_in(other, Role.CARE_COORDINATOR, "coord")
    assert "lifecycle/recompute/" in page(other, patient)
    # A clinician reads demographics but may not change them.
    clinician = Client()
    signed_in(clinician, Role.CLINICIAN, "doc")
    assert clinician.post(
        f"/patients/{patient.id}/lifecycle/recompute/", secure=True
    ).status_code in (
        403,
        404,
    )


def test_recompute_applies_the_rules_keeps_the_history_and_is_audited(
    client: Client, patient: Patient
) -> None:
    user = signed_in(client, Role.FRONT_DESK)
    response = client.post(f"/patients/{patient.id}/lifecycle/recompute/", secure=True)
    assert response.status_code == 302
    assert response["Location"] == f"/patients/{patient.id}/#lifecycle"
    patient.refresh_from_db()
    # No visit and nothing booked: the rules say acquisition.
    assert (patient.lifecycle_stage, patient.lifecycle_reason) == ("acquisition", "no visit yet")
    change = StageChange.objects.get(patient=patient)
    assert (change.from_stage, change.to_stage) == ("dormant", "acquisition")
    event = AuditEvent.objects.get(action="patient.lifecycle_recompute")
    assert event.actor_id == str(user.pk) and event.patient_id == patient.pk
    html = page(client, patient)
    assert "Lifecycle stage recomputed: Acquisition." in html
    assert "Stage: Acquisition (no visit yet)" in html


def test_recompute_answers_405_to_a_get(client: Client, patient: Patient) -> None:
    signed_in(client, Role.FRONT_DESK)
    assert (
        client.get(f"/patients/{patient.id}/lifecycle/recompute/", secure=True).status_code == 405
    )


def test_the_timeline_shows_newest_first_with_who_and_when(
    client: Client, patient: Patient
) -> None:
    user = signed_in(client, Role.FRONT_DESK)
    base = datetime.datetime(2026, 3, 1, 15, 0, tzinfo=datetime.UTC)
    timeline_add(patient=patient, kind=TimelineKind.VISIT, summary="Visit: annual exam", at=base)
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary="Contact details changed",
        at=base + datetime.timedelta(days=2),
        actor=user,
    )
    html = page(client, patient)
    newer, older = html.index("Contact details changed"), html.index("Visit: annual exam")
    assert newer < older
    assert "by front_desk-user" in html
    assert "by careloop" in html  # an event no person caused
    assert "03/03/2026" in html


def test_an_empty_timeline_says_so(client: Client, patient: Patient) -> None:
    signed_in(client, Role.FRONT_DESK)
    assert "Nothing on the timeline yet." in page(client, patient)


def test_viewing_the_page_audits_the_timeline_read(client: Client, patient: Patient) -> None:
    signed_in(client, Role.FRONT_DESK)
    page(client, patient)
    event = AuditEvent.objects.get(action="patient.timeline_view")
    assert event.patient_id == patient.pk
    assert "timeline" in event.fields
    assert clock.now() >= event.at
