"""Each lifecycle stage, built from events, with the reason staff will read."""

from __future__ import annotations

import datetime
import uuid

import pytest

from careloop.clinical.models import ClinicalFact
from careloop.consent.models import ContactEvent
from careloop.patients.lifecycle import lifecycle_evaluate, lifecycle_recompute
from careloop.patients.models import LifecycleStage, Patient, StageChange, TimelineEvent
from careloop.referrals.models import Referral
from careloop.scheduling.models import Appointment, AppointmentType, Location, Provider

AS_OF = datetime.datetime(2026, 6, 1, 15, 0, tzinfo=datetime.UTC)


def days_ago(days: int) -> datetime.datetime:
    return AS_OF - datetime.timedelta(days=days)


@pytest.fixture
def practice() -> Provider:
    location = Location.objects.create(name="Main Street", time_zone="America/Chicago")
    AppointmentType.objects.create(code="office", name="Office visit", minutes=20)
    return Provider.objects.create(
        display_name="Dr. Ada Lin", npi="1234567893", specialty="Family medicine", location=location
    )


def new_patient(**fields: object) -> Patient:
    patient = Patient(
        given_name="Sam",
        family_name="Okafor",
        birth_date=datetime.date(1958, 9, 9),
        created_at=days_ago(900),
        updated_at=days_ago(900),
        **fields,
    )
    patient.save()
    return patient


def visit(
    patient: Patient, provider: Provider, at: datetime.datetime, status: str = "fulfilled"
) -> None:
    Appointment.objects.create(
        patient=patient,
        provider=provider,
        location=provider.location,
        appointment_type_id="office",
        start=at,
        end=at + datetime.timedelta(minutes=20),
        status=status,
        created_at=at - datetime.timedelta(days=10),
    )


def condition(patient: Patient, system: str, code: str, since: datetime.datetime) -> None:
    ClinicalFact.objects.create(
        patient=patient,
        kind="condition",
        system=system,
        code=code,
        status="active",
        effective_start=since,
    )


SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.mark.django_db
def test_a_lead_without_visits_is_in_acquisition(practice: Provider) -> None:
    result = lifecycle_evaluate(patient=new_patient(), as_of=AS_OF)
    assert (result.stage, result.reason) == (LifecycleStage.ACQUISITION, "no visit yet")


@pytest.mark.django_db
def test_a_booked_first_appointment_is_onboarding(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, AS_OF + datetime.timedelta(days=9), status="booked")
    result = lifecycle_evaluate(patient=patient, as_of=AS_OF)
    assert result.stage == LifecycleStage.ONBOARDING
    assert result.reason.startswith("first appointment booked for 2026-06-10")


@pytest.mark.django_db
def test_one_recent_visit_is_first_visit(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, days_ago(20))
    result = lifecycle_evaluate(patient=patient, as_of=AS_OF)
    assert (result.stage, result.reason) == (
        LifecycleStage.FIRST_VISIT,
        "first visit on 2026-05-12",
    )


@pytest.mark.django_db
def test_an_encounter_from_the_ehr_on_the_same_day_is_the_same_visit(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, days_ago(20))
    ClinicalFact.objects.create(
        patient=patient,
        kind="encounter",
        system="http://www.ama-assn.org/go/cpt",
        code="99213",
        effective_start=days_ago(20) + datetime.timedelta(minutes=5),
    )
    assert lifecycle_evaluate(patient=patient, as_of=AS_OF).stage == LifecycleStage.FIRST_VISIT


@pytest.mark.django_db
def test_an_active_care_plan(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, days_ago(300))
    visit(patient, practice, days_ago(40))
    ClinicalFact.objects.create(
        patient=patient,
        kind="care_plan",
        system=SNOMED,
        code="736353004",
        display="Post-operative physiotherapy plan",
        status="active",
        effective_start=days_ago(40),
    )
    result = lifecycle_evaluate(patient=patient, as_of=AS_OF)
    assert result.stage == LifecycleStage.CARE_PLAN
    assert "Post-operative physiotherapy plan" in result.reason


@pytest.mark.django_db
def test_a_diabetic_seen_on_schedule_is_chronic(practice: Provider) -> None:
    patient = new_patient()
    condition(patient, ICD10, "E11.9", days_ago(2000))
    visit(patient, practice, days_ago(400))
    visit(patient, practice, days_ago(100))
    result = lifecycle_evaluate(patient=patient, as_of=AS_OF)
    assert result.stage == LifecycleStage.CHRONIC
    assert result.reason == "in chronic care for diabetes; seen every 6 months, last 2026-02-21"


@pytest.mark.django_db
def test_a_well_patient_is_preventive(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, days_ago(500))
    visit(patient, practice, days_ago(200))
    result = lifecycle_evaluate(patient=patient, as_of=AS_OF)
    assert result.stage == LifecycleStage.PREVENTIVE
    assert "last visit 2025-11-13" in result.reason


@pytest.mark.django_db
def test_an_open_outbound_referral(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, days_ago(300))
    visit(patient, practice, days_ago(30))
    Referral.objects.create(
        patient=patient,
        direction="outbound",
        status="sent",
        specialty="Cardiology",
        counterpart="Heart Center",
        created_at=days_ago(25),
    )
    result = lifecycle_evaluate(patient=patient, as_of=AS_OF)
    assert (result.stage, result.reason) == (
        LifecycleStage.REFERRAL,
        "open outbound referral to Cardiology since 2026-05-07",
    )


@pytest.mark.django_db
def test_a_diabetic_behind_cadence_is_a_retention_risk(practice: Provider) -> None:
    patient = new_patient()
    condition(patient, SNOMED, "44054006", days_ago(2000))
    visit(patient, practice, days_ago(600))
    visit(patient, practice, days_ago(240))
    result = lifecycle_evaluate(patient=patient, as_of=AS_OF)
    assert (result.stage, result.reason) == (
        LifecycleStage.RETENTION_RISK,
        "no visit since 2025-10-04; diabetic patients are expected every 6 months",
    )


@pytest.mark.django_db
def test_a_well_patient_is_not_at_risk_at_eight_months(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, days_ago(600))
    visit(patient, practice, days_ago(240))
    assert lifecycle_evaluate(patient=patient, as_of=AS_OF).stage == LifecycleStage.PREVENTIVE


@pytest.mark.django_db
def test_no_contact_for_two_years_is_dormant(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, days_ago(1200))
    visit(patient, practice, days_ago(800))
    result = lifecycle_evaluate(patient=patient, as_of=AS_OF)
    assert result.stage == LifecycleStage.DORMANT
    assert result.reason.startswith("no visit since 2024-03-23 and no contact for over 24 months")


@pytest.mark.django_db
def test_a_recent_message_keeps_a_lapsed_patient_out_of_dormant(practice: Provider) -> None:
    patient = new_patient()
    visit(patient, practice, days_ago(1200))
    visit(patient, practice, days_ago(800))
    ContactEvent.objects.create(
        patient=patient, channel="sms", purpose="care_reminder", at=days_ago(30)
    )
    assert lifecycle_evaluate(patient=patient, as_of=AS_OF).stage == LifecycleStage.RETENTION_RISK


@pytest.mark.django_db
def test_transferred_and_deceased_are_terminal(practice: Provider) -> None:
    moved = new_patient(transferred_on=datetime.date(2026, 4, 1))
    visit(moved, practice, days_ago(30))
    assert lifecycle_evaluate(patient=moved, as_of=AS_OF).stage == LifecycleStage.TRANSFERRED
    died = new_patient(
        deceased_on=datetime.date(2026, 5, 2), transferred_on=datetime.date(2026, 1, 1)
    )
    result = lifecycle_evaluate(patient=died, as_of=AS_OF)
    assert (result.stage, result.reason) == (LifecycleStage.DECEASED, "deceased on 2026-05-02")


@pytest.mark.django_db
def test_recompute_keeps_history_and_writes_the_timeline(practice: Provider) -> None:
    patient = new_patient()
    lifecycle_recompute(patient=patient, as_of=days_ago(60))
    visit(patient, practice, days_ago(20))
    lifecycle_recompute(patient=patient, as_of=AS_OF)
    lifecycle_recompute(patient=patient, as_of=AS_OF)  # nothing new: no new history row
    patient.refresh_from_db()
    assert patient.lifecycle_stage == LifecycleStage.FIRST_VISIT
    history = list(
        StageChange.objects.filter(patient=patient).values_list("from_stage", "to_stage")
    )
    # The model's default stage is acquisition, so the first evaluation changed only the reason.
    assert history == [("acquisition", "first_visit")]
    assert TimelineEvent.objects.filter(patient=patient, kind="stage").count() == 1
    assert uuid.UUID(str(patient.pk))


@pytest.mark.django_db
def test_the_sweep_moves_a_patient_into_retention_risk_as_time_passes(practice: Provider) -> None:
    from careloop.core.clock import frozen
    from careloop.patients.lifecycle import lifecycle_sweep

    patient = new_patient()
    condition(patient, SNOMED, "44054006", days_ago(2000))
    visit(patient, practice, days_ago(400))
    visit(patient, practice, days_ago(100))
    with frozen(AS_OF):
        assert lifecycle_sweep(batch=10, stale_after=datetime.timedelta(days=1)) == 1
        patient.refresh_from_db()
        assert patient.lifecycle_stage == LifecycleStage.CHRONIC
        # Evaluated just now: not due again today.
        assert lifecycle_sweep(batch=10, stale_after=datetime.timedelta(days=1)) == 0
    with frozen(AS_OF + datetime.timedelta(days=120)):
        assert lifecycle_sweep(batch=10, stale_after=datetime.timedelta(days=1)) == 1
    patient.refresh_from_db()
    assert patient.lifecycle_stage == LifecycleStage.RETENTION_RISK
    assert "diabetic patients are expected every 6 months" in patient.lifecycle_reason
    assert StageChange.objects.filter(patient=patient, to_stage="retention_risk").exists()
