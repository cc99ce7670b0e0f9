"""Each built-in journey end to end: events found, steps run on their schedule, messages
sent through the loopback SMS provider and a real SMTP server, exits honoured.

`Drive` moves the clock from one due moment to the next (a journey step, a message
whose quiet hours ended) and runs what the worker runs: the trigger scan, the journey
steps and the dispatcher.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models import Min

from careloop.caregaps.models import CareGap, GapState
from careloop.clinical.models import ClinicalFact, FactKind
from careloop.consent.ledger import consent_record
from careloop.consent.models import (
    CaptureMethod,
    ChannelOptIn,
    CommunicationPreference,
    ConsentKind,
    ConsentStatus,
)
from careloop.core import clock
from careloop.outreach.dispatch import dispatch_due
from careloop.outreach.journeys import enrollments_advance
from careloop.outreach.models import (
    Enrollment,
    EnrollmentStatus,
    Journey,
    Message,
    MessageStatus,
    StaffTask,
)
from careloop.outreach.triggers import journeys_scan
from careloop.patients.models import LifecycleStage, Patient, StageChange
from careloop.scheduling.models import Appointment
from tests.outreach.conftest import NOON, reachable_patient
from tests.outreach.fake_twilio import FakeTwilio
from tests.outreach.smtp_server import Inbox
from tests.patients.builders import add_appointment, make_location, make_provider

pytestmark = pytest.mark.django_db
DAY = datetime.timedelta(days=1)


class Drive:
    """Run the worker's loops, moving the clock to each next due moment."""

    def __init__(self, start: datetime.datetime) -> None:
        self.at = start

    def _next(self) -> datetime.datetime | None:
        moments = [
            Enrollment.objects.filter(status=EnrollmentStatus.ACTIVE).aggregate(
                m=Min("next_run_at")
            )["m"],
            Message.objects.filter(status=MessageStatus.QUEUED).aggregate(m=Min("next_attempt_at"))[
                "m"
            ],
        ]
        due = [m for m in moments if m is not None]
        return min(due) if due else None

    def until(self, end: datetime.datetime) -> None:
        """Everything due up to `end`, then the clock at `end`."""
        for _ in range(200):
            with clock.frozen(self.at):
                journeys_scan()
                enrollments_advance()
                dispatch_due()
            following = self._next()
            if following is None or following > end:
                break
            self.at = max(self.at + datetime.timedelta(seconds=1), following)
        self.at = max(self.at, end)

    def days(self, n: float) -> None:
        self.until(self.at + datetime.timedelta(days=n))


@pytest.fixture
def only() -> Iterator[Any]:
    """Switch every built-in journey off but the one a test drives."""

    def keep(key: str) -> Journey:
        Journey.objects.exclude(key=key).update(enabled=False)
        return Journey.objects.get(key=key)

    yield keep


def _prefer(patient: Patient, *channels: str) -> None:
    CommunicationPreference.objects.update_or_create(
        patient=patient, defaults={"channel_order": list(channels), "updated_at": clock.now()}
    )


def _grant(patient: Patient, kind: ConsentKind) -> None:
    consent_record(
        patient=patient,
        kind=kind,
        status=ConsentStatus.GRANTED,
        capture_method=CaptureMethod.PORTAL_ESIGNATURE,
        captured_at=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
    )


def _texts(provider: FakeTwilio) -> list[str]:
    return [form["Body"] for form in provider.delivered]


def _mails(inbox: Inbox) -> list[str]:
    return [str(a.message["Subject"]) for a in inbox.arrived]


def _templates(patient: Patient) -> list[str]:
    return list(
        Message.objects.filter(patient=patient, status=MessageStatus.SENT)
        .order_by("sent_at")
        .values_list("template_id", flat=True)
    )


def _stage(patient: Patient, stage: str, at: datetime.datetime) -> None:
    StageChange.objects.create(patient=patient, at=at, from_stage="", to_stage=stage, reason="test")


@pytest.fixture
def clinic() -> Any:
    return make_provider(make_location())


def test_no_show_recovery_invites_the_same_day_again_at_seven_days_and_stops_on_rebooking(
    vendors: None, provider: FakeTwilio, only: Any, clinic: Any
) -> None:
    only("no-show-recovery")
    patient = reachable_patient()
    missed = add_appointment(patient, clinic, NOON - datetime.timedelta(hours=2), status="noshow")
    drive = Drive(NOON)
    drive.days(0.1)
    assert _templates(patient) == ["noshow-reschedule"]
    (first,) = _texts(provider)
    assert "/m/" in first  # the one-click signed reschedule link
    drive.days(7)
    assert _templates(patient) == ["noshow-reschedule", "noshow-followup-7d"]
    # The patient books again: the journey stops before the staff call.
    with clock.frozen(drive.at):
        add_appointment(patient, clinic, drive.at + 5 * DAY)
    drive.days(5)
    enrollment = Enrollment.objects.get(subject_id=str(missed.pk))
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "appointment_booked")
    assert not StaffTask.objects.exists()
    assert len(provider.delivered) == 2


def test_no_show_without_rebooking_ends_in_a_staff_call(
    vendors: None, provider: FakeTwilio, only: Any, clinic: Any
) -> None:
    only("no-show-recovery")
    patient = reachable_patient()
    add_appointment(patient, clinic, NOON - datetime.timedelta(hours=2), status="noshow")
    Drive(NOON).days(11)
    assert _templates(patient) == ["noshow-reschedule", "noshow-followup-7d"]
    assert list(StaffTask.objects.values_list("title", flat=True)) == [
        "Call the patient to reschedule the missed visit"
    ]


def test_pre_visit_reminds_at_seven_and_two_days_and_on_the_day(
    vendors: None, provider: FakeTwilio, smtp_tls: Inbox, only: Any, clinic: Any
) -> None:
    only("pre-visit")
    patient = reachable_patient()
    start = NOON + 10 * DAY
    appointment = add_appointment(patient, clinic, start)
    drive = Drive(NOON)
    drive.until(start - datetime.timedelta(hours=1))
    assert _templates(patient) == [
        "previsit-7d",
        "previsit-preregistration",
        "previsit-2d",
        "previsit-sameday",
    ]
    reminder = Message.objects.get(patient=patient, template_id="previsit-7d")
    assert reminder.appointment_id == appointment.pk
    assert "Y" in reminder.body  # asks for a confirmation
    # The 7-day reminder went out at 10:00 in the clinic's zone (Chicago).
    assert reminder.sent_at == datetime.datetime(2026, 6, 13, 15, 0, tzinfo=datetime.UTC)


def test_a_confirmed_visit_skips_the_two_day_reminder(
    vendors: None, provider: FakeTwilio, only: Any, clinic: Any
) -> None:
    only("pre-visit")
    patient = reachable_patient()
    start = NOON + 10 * DAY
    appointment = add_appointment(patient, clinic, start)
    drive = Drive(NOON)
    drive.until(start - 4 * DAY)
    Appointment.objects.filter(pk=appointment.pk).update(status="confirmed")
    drive.until(start - datetime.timedelta(hours=1))
    assert _templates(patient) == ["previsit-7d", "previsit-preregistration", "previsit-sameday"]


def test_a_cancelled_visit_ends_its_reminders(
    vendors: None, provider: FakeTwilio, only: Any, clinic: Any
) -> None:
    only("pre-visit")
    patient = reachable_patient()
    appointment = add_appointment(patient, clinic, NOON + 10 * DAY)
    drive = Drive(NOON)
    drive.days(1)
    Appointment.objects.filter(pk=appointment.pk).update(status="cancelled")
    drive.days(12)
    assert _templates(patient) == []
    assert Enrollment.objects.get().exit_reason == "subject_cancelled"


def test_post_visit_instructions_then_survey_then_follow_up_by_email(
    vendors: None, smtp_tls: Inbox, only: Any, clinic: Any
) -> None:
    only("post-visit")
    patient = reachable_patient()
    _prefer(patient, "email", "sms")
    add_appointment(patient, clinic, NOON - datetime.timedelta(hours=3), status="fulfilled")
    Drive(NOON).days(8)
    assert _templates(patient) == [
        "postvisit-instructions",
        "survey-satisfaction",
        "postvisit-followup",
    ]
    assert len(smtp_tls.arrived) == 3
    assert all(a.over_tls for a in smtp_tls.arrived)


def _gap(patient: Patient, due: datetime.date, measure: str = "CMS130") -> CareGap:
    return CareGap.objects.create(
        patient=patient, measure=measure, state=GapState.OPEN, opened_at=NOON, due_date=due
    )


def test_care_gap_recall_before_at_and_after_the_due_date_then_a_task(
    vendors: None, provider: FakeTwilio, smtp_tls: Inbox, only: Any
) -> None:
    only("care-gap-recall")
    patient = reachable_patient()
    _prefer(patient, "email", "sms")
    _gap(patient, (NOON + 40 * DAY).date())
    Drive(NOON).days(90)
    assert _templates(patient) == ["gap-recall-before", "gap-recall-due", "gap-recall-overdue"]
    # Outside the portal the screening is never named.
    for arrived in smtp_tls.arrived:
        text = arrived.message.get_body(preferencelist=("plain",)).get_content().lower()
        assert "colorectal" not in text and "colon" not in text
    assert StaffTask.objects.filter(queue="care").count() == 1


def test_care_gap_recall_stops_when_the_gap_closes(
    vendors: None, provider: FakeTwilio, only: Any
) -> None:
    only("care-gap-recall")
    patient = reachable_patient()
    gap = _gap(patient, (NOON + 40 * DAY).date())
    drive = Drive(NOON)
    drive.days(20)
    assert _templates(patient) == ["gap-recall-before"]
    CareGap.objects.filter(pk=gap.pk).update(
        state=GapState.CLOSED, closed_at=drive.at, resolution="met"
    )
    drive.days(80)
    assert _templates(patient) == ["gap-recall-before"]
    assert Enrollment.objects.get().exit_reason == "gap_closed"


def test_an_overdue_gap_starts_at_the_overdue_message(
    vendors: None, provider: FakeTwilio, only: Any
) -> None:
    only("care-gap-recall")
    patient = reachable_patient()
    _gap(patient, (NOON - 10 * DAY).date())
    Drive(NOON).days(1)
    assert _templates(patient) == ["gap-recall-overdue"]


def test_onboarding_until_the_paperwork_is_done(
    vendors: None, provider: FakeTwilio, only: Any
) -> None:
    only("onboarding")
    patient = reachable_patient()
    _stage(patient, LifecycleStage.ONBOARDING, NOON)
    drive = Drive(NOON)
    drive.days(3)
    assert _templates(patient) == ["onboarding-intake", "onboarding-consents"]
    _grant(patient, ConsentKind.TREATMENT)
    _grant(patient, ConsentKind.NPP_ACK)
    from tests.patients.builders import add_coverage

    add_coverage(patient, payer_name="Acme Health", member_id="X1", payer_category="commercial")
    drive.days(10)
    assert _templates(patient) == ["onboarding-intake", "onboarding-consents"]
    assert Enrollment.objects.get().exit_reason == "onboarding_complete"


def test_new_lead_welcome_needs_marketing_consent(
    vendors: None, smtp_tls: Inbox, only: Any
) -> None:
    only("new-lead-welcome")
    consented = reachable_patient()
    _prefer(consented, "email")
    _grant(consented, ConsentKind.MARKETING)
    ChannelOptIn.objects.create(
        patient=consented, channel="email", purpose="marketing", opted_in=True, updated_at=NOON
    )
    silent = reachable_patient(mobile="+16175550102")
    _prefer(silent, "email")
    for patient in (consented, silent):
        _stage(patient, LifecycleStage.ACQUISITION, NOON)
    Drive(NOON).days(4)
    print(
        list(Enrollment.objects.values_list("status", "exit_reason", "step")),
        list(StageChange.objects.values_list("to_stage", "at")),
    )
    assert _templates(consented) == ["lead-welcome"]
    assert _mails(smtp_tls) and len(smtp_tls.arrived) == 1
    withheld = Message.objects.get(patient=silent)
    assert (withheld.status, withheld.scheduled_reason) == ("withheld", "no_consent")
    assert StaffTask.objects.count() == 2  # both leads get a call


def test_chronic_check_ins_each_quarter(vendors: None, provider: FakeTwilio, only: Any) -> None:
    only("chronic-cadence")
    patient = reachable_patient()
    ClinicalFact.objects.create(
        patient=patient,
        kind=FactKind.CONDITION,
        system="http://snomed.info/sct",
        code="44054006",  # type 2 diabetes, in the measures' Diabetes value set
        status="active",
        effective_start=NOON - 400 * DAY,
    )
    Drive(NOON).days(200)
    assert _templates(patient) == ["chronic-checkin", "chronic-checkin", "chronic-checkin"]


def test_medication_check_in_after_a_new_prescription(
    vendors: None, provider: FakeTwilio, only: Any
) -> None:
    only("medication-adherence")
    patient = reachable_patient()
    ClinicalFact.objects.create(
        patient=patient,
        kind=FactKind.MEDICATION,
        system="http://www.nlm.nih.gov/research/umls/rxnorm",
        code="860975",
        status="active",
        effective_start=NOON - datetime.timedelta(hours=5),
    )
    Drive(NOON).days(50)
    assert _templates(patient) == ["medication-checkin", "medication-checkin"]


def test_reactivation_of_a_dormant_patient(vendors: None, provider: FakeTwilio, only: Any) -> None:
    only("reactivation")
    patient = reachable_patient()
    Patient.objects.filter(pk=patient.pk).update(lifecycle_stage=LifecycleStage.DORMANT)
    _stage(patient, LifecycleStage.DORMANT, NOON)
    Drive(NOON).days(30)
    assert _templates(patient) == ["reactivation", "reactivation"]
    assert StaffTask.objects.count() == 1


def test_an_admitted_patient_gets_no_routine_outreach_until_discharged(
    vendors: None, provider: FakeTwilio, only: Any
) -> None:
    only("care-gap-recall")
    patient = reachable_patient()
    stay = ClinicalFact.objects.create(
        patient=patient,
        kind=FactKind.ENCOUNTER,
        system="http://terminology.hl7.org/CodeSystem/v3-ActCode",
        code="IMP",
        category="inpatient",
        status="in-progress",
        effective_start=NOON - DAY,
    )
    _gap(patient, (NOON - 5 * DAY).date())
    drive = Drive(NOON)
    drive.days(3)
    assert _templates(patient) == []
    assert Enrollment.objects.get().events.filter(kind="pause", outcome="admitted").exists()
    ClinicalFact.objects.filter(pk=stay.pk).update(status="finished", effective_end=drive.at)
    drive.days(2)
    assert _templates(patient) == ["gap-recall-overdue"]
