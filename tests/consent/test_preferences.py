"""The staff preference centre: one service, the ledger for channel consents, and
`may_contact` seeing each change at once."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from careloop.consent.decisions import Reason, may_contact
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ChannelOptIn,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
    Purpose,
    RestrictedTopic,
)
from careloop.consent.preferences import Preferences, preferences_current, preferences_update
from careloop.consent.services import ConsentError
from careloop.core.clock import now
from careloop.core.errors import PermissionDenied
from careloop.patients.models import Patient
from careloop.security.models import AuditEvent, Role, User
from tests.consent.test_may_contact import NOON_NY, NY, reachable_patient
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient() -> Patient:
    return reachable_patient()


@pytest.fixture
def desk() -> User:
    return staff_user(Role.FRONT_DESK, "desk")


def update(actor: User, patient: Patient, **changes: object) -> list[str]:
    current = preferences_current(patient=patient)
    fields = {**current.__dict__, "channel_consents": {}, **changes}
    return preferences_update(
        actor=actor,
        patient=patient,
        preferences=Preferences(**fields),  # type: ignore[arg-type]
        method=CaptureMethod.VERBAL,
        note="asked by phone",
    )


def test_revoking_sms_is_a_ledger_record_and_may_contact_refuses_at_once(
    patient: Patient, desk: User
) -> None:
    assert may_contact(patient, "sms", "appointment", "logistics", NOON_NY).allowed
    changed = update(desk, patient, channel_consents={ConsentKind.SMS: ConsentStatus.REVOKED})
    assert changed == ["comm_sms"]
    record = ConsentRecord.objects.filter(patient=patient, kind="comm_sms").latest("recorded_at")
    assert record.status == "revoked" and record.capture_method == "verbal"
    assert record.captured_by == desk and record.note == "asked by phone"
    # The revocation is captured now; ask at noon the next day, outside quiet hours.
    tomorrow = now().astimezone(NY).date() + datetime.timedelta(days=1)
    noon = datetime.datetime.combine(tomorrow, datetime.time(12, 0), tzinfo=NY)
    decision = may_contact(patient, "sms", "appointment", "logistics", noon)
    assert decision.reason == Reason.OPTED_OUT  # a revoked consent reads as an opt-out


def test_do_not_contact_holds_at_once(patient: Patient, desk: User) -> None:
    update(desk, patient, do_not_contact=True)
    decision = may_contact(patient, "email", "appointment", "generic", NOON_NY)
    assert decision.reason == Reason.DO_NOT_CONTACT
    assert AuditEvent.objects.filter(action="preferences.update", patient_id=patient.pk).exists()


def test_a_purpose_opt_out_and_topic_restriction_hold_at_once(patient: Patient, desk: User) -> None:
    update(
        desk,
        patient,
        opt_ins={(Channel.EMAIL, Purpose.SURVEY): False},
        topics=frozenset({RestrictedTopic.HIV}),
    )
    assert ChannelOptIn.objects.get(patient=patient).opted_in is False
    assert may_contact(patient, "email", "survey", "generic", NOON_NY).reason == Reason.OPTED_OUT
    restricted = may_contact(patient, "portal", "care_reminder", "generic", NOON_NY, topic="hiv")
    assert restricted.reason == Reason.RESTRICTED_CONDITION


def test_own_quiet_hours_hold_at_once(patient: Patient, desk: User) -> None:
    update(desk, patient, quiet_start=datetime.time(11, 0), quiet_end=datetime.time(13, 0))
    decision = may_contact(patient, "sms", "care_reminder", "generic", NOON_NY)
    assert decision.reason == Reason.QUIET_HOURS


def test_saving_unchanged_preferences_records_nothing(patient: Patient, desk: User) -> None:
    before = ConsentRecord.objects.count()
    assert update(desk, patient) == []
    assert ConsentRecord.objects.count() == before


def test_half_a_quiet_window_is_refused(patient: Patient, desk: User) -> None:
    with pytest.raises(ConsentError):
        update(desk, patient, quiet_start=datetime.time(20, 0))


def test_a_clinician_may_not_change_preferences(patient: Patient) -> None:
    clinician = staff_user(Role.CLINICIAN, "doc")
    with pytest.raises(PermissionDenied):
        update(clinician, patient, do_not_contact=True)
    client = force_verified_login(Client(), clinician)
    response = client.post(f"/patients/{patient.pk}/preferences/", {}, secure=True)
    assert response.status_code in (403, 404)


def test_the_preference_page_saves_and_shows_errors(patient: Patient, desk: User) -> None:
    client = force_verified_login(Client(), desk)
    url = f"/patients/{patient.pk}/preferences/"
    assert client.get(url, secure=True).status_code == 200
    bad = client.post(url, {"channel_order": "sms, pigeon", "method": "verbal"}, secure=True)
    assert bad.status_code == 200 and "alert-error" in bad.content.decode()
    good = client.post(
        url,
        {
            "channel_order": "email, sms",
            "method": "verbal",
            "do_not_contact": "on",
            "optin_sms_marketing": "out",
        },
        secure=True,
    )
    assert good.status_code == 302
    current = preferences_current(patient=patient)
    assert current.channel_order == [Channel.EMAIL, Channel.SMS] and current.do_not_contact
    assert current.opt_ins == {(Channel.SMS, Purpose.MARKETING): False}
