"""The contact decision, case by case: every reason, time zones and both 2026 DST changes."""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Callable

import pytest

from careloop.consent.decisions import Reason, may_contact, quiet_until
from careloop.consent.ledger import consent_current, consent_record
from careloop.consent.models import (
    CaptureMethod,
    ChannelOptIn,
    CommunicationPreference,
    ConsentKind,
    ConsentStatus,
    ContactEvent,
    TopicRestriction,
)
from careloop.core.clock import now
from careloop.patients.models import ContactPoint, LifecycleStage, Patient

NY = zoneinfo.ZoneInfo("America/New_York")


def local(zone: str, *args: int, fold: int = 0) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=zoneinfo.ZoneInfo(zone), fold=fold)  # type: ignore[misc]


NOON_NY = local("America/New_York", 2026, 6, 10, 12, 0)


def reachable_patient(zone: str = "America/New_York") -> Patient:
    """A patient with a verified mobile and e-mail and SMS and voice consent on file."""
    patient = Patient(
        given_name="Rosa",
        family_name="Delgado",
        birth_date=datetime.date(1961, 4, 2),
        time_zone=zone,
        lifecycle_stage=LifecycleStage.CHRONIC,
        created_at=now(),
        updated_at=now(),
    )
    patient.save()
    ContactPoint(
        patient=patient,
        system="phone",
        value="6175550101",
        verified=True,
        can_sms=True,
        can_voice=True,
    ).save()
    ContactPoint(
        patient=patient, system="email", value="rosa@example.org", verified=True, can_email=True
    ).save()
    early = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    for kind in (ConsentKind.SMS, ConsentKind.VOICE):
        consent_record(
            patient=patient,
            kind=kind,
            status=ConsentStatus.GRANTED,
            capture_method=CaptureMethod.PORTAL_ESIGNATURE,
            captured_at=early,
        )
    return patient


def preference(patient: Patient, **fields: object) -> None:
    CommunicationPreference.objects.update_or_create(
        patient=patient, defaults={"updated_at": now(), **fields}
    )


def opt(patient: Patient, channel: str, purpose: str, opted_in: bool) -> None:
    ChannelOptIn.objects.update_or_create(
        patient=patient,
        channel=channel,
        purpose=purpose,
        defaults={"opted_in": opted_in, "updated_at": now()},
    )


def revoke(kind: ConsentKind) -> Callable[[Patient], None]:
    def apply(patient: Patient) -> None:
        consent_record(
            patient=patient,
            kind=kind,
            status=ConsentStatus.REVOKED,
            capture_method=CaptureMethod.SMS_KEYWORD,
            captured_at=datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC),
            note="STOP reply",
        )

    return apply


def grant_marketing(patient: Patient) -> None:
    consent_record(
        patient=patient,
        kind=ConsentKind.MARKETING,
        status=ConsentStatus.GRANTED,
        capture_method=CaptureMethod.PORTAL_ESIGNATURE,
        captured_at=datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC),
    )
    opt(patient, "email", "marketing", True)


def sent(channel: str, purpose: str, *times: datetime.datetime) -> Callable[[Patient], None]:
    def apply(patient: Patient) -> None:
        for at in times:
            ContactEvent.objects.create(patient=patient, channel=channel, purpose=purpose, at=at)

    return apply


def forget_sms_consent(patient: Patient) -> None:
    # Remove the fixture's SMS consent: this patient never answered.
    patient.consents.filter(kind=ConsentKind.SMS).delete()


def nothing(patient: Patient) -> None:
    return None


CASES: list[
    tuple[str, Callable[[Patient], None], str, str, str, str | None, datetime.datetime, Reason]
] = [
    (
        "sms appointment reminder at noon",
        nothing,
        "sms",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "email care reminder",
        nothing,
        "email",
        "care_reminder",
        "generic",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "portal carries sensitive content",
        nothing,
        "portal",
        "care_reminder",
        "sensitive",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "deceased patient",
        lambda p: Patient.objects.filter(pk=p.pk).update(deceased_on=datetime.date(2026, 1, 5)),
        "portal",
        "care_reminder",
        "generic",
        None,
        NOON_NY,
        Reason.DECEASED,
    ),
    (
        "deceased stage",
        lambda p: Patient.objects.filter(pk=p.pk).update(lifecycle_stage="deceased"),
        "email",
        "billing",
        "generic",
        None,
        NOON_NY,
        Reason.DECEASED,
    ),
    (
        "do not contact",
        lambda p: preference(p, do_not_contact=True),
        "email",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.DO_NOT_CONTACT,
    ),
    (
        "restricted topic by sms",
        nothing,
        "sms",
        "care_reminder",
        "generic",
        "hiv",
        NOON_NY,
        Reason.RESTRICTED_CONDITION,
    ),
    (
        "restricted topic in the portal",
        nothing,
        "portal",
        "care_reminder",
        "sensitive",
        "substance_use",
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "restricted topic barred entirely",
        lambda p: TopicRestriction.objects.create(
            patient=p, topic="behavioral_health", created_at=now()
        ),
        "portal",
        "care_reminder",
        "sensitive",
        "behavioral_health",
        NOON_NY,
        Reason.RESTRICTED_CONDITION,
    ),
    (
        "sensitive by sms",
        nothing,
        "sms",
        "care_reminder",
        "sensitive",
        None,
        NOON_NY,
        Reason.SENSITIVE_CONTENT_CHANNEL,
    ),
    (
        "sensitive by email",
        nothing,
        "email",
        "care_reminder",
        "sensitive",
        None,
        NOON_NY,
        Reason.SENSITIVE_CONTENT_CHANNEL,
    ),
    (
        "no verified phone",
        lambda p: ContactPoint.objects.filter(patient=p, system="phone").update(verified=False),
        "sms",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.NO_VERIFIED_ADDRESS,
    ),
    (
        "landline cannot take sms",
        lambda p: ContactPoint.objects.filter(patient=p, system="phone").update(can_sms=False),
        "sms",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.NO_VERIFIED_ADDRESS,
    ),
    (
        "landline takes voice",
        lambda p: ContactPoint.objects.filter(patient=p, system="phone").update(can_sms=False),
        "voice",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "no email on file",
        lambda p: ContactPoint.objects.filter(patient=p, system="email").delete(),
        "email",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.NO_VERIFIED_ADDRESS,
    ),
    (
        "no push subscription",
        nothing,
        "push",
        "appointment",
        "generic",
        None,
        NOON_NY,
        Reason.NO_VERIFIED_ADDRESS,
    ),
    (
        "sms revoked by STOP",
        revoke(ConsentKind.SMS),
        "sms",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.OPTED_OUT,
    ),
    (
        "STOP does not stop email",
        revoke(ConsentKind.SMS),
        "email",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "purpose opt-out",
        lambda p: opt(p, "email", "survey", False),
        "email",
        "survey",
        "generic",
        None,
        NOON_NY,
        Reason.OPTED_OUT,
    ),
    (
        "never consented to sms",
        forget_sms_consent,
        "sms",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.NO_CONSENT,
    ),
    (
        "marketing without consent",
        nothing,
        "email",
        "marketing",
        "generic",
        None,
        NOON_NY,
        Reason.NO_CONSENT,
    ),
    (
        "marketing with consent and opt-in",
        grant_marketing,
        "email",
        "marketing",
        "generic",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "marketing consent revoked",
        lambda p: (grant_marketing(p), revoke(ConsentKind.MARKETING)(p)),
        "email",
        "marketing",
        "generic",
        None,
        NOON_NY,
        Reason.OPTED_OUT,
    ),
    (
        "sms at 21:30 local",
        nothing,
        "sms",
        "care_reminder",
        "generic",
        None,
        local("America/New_York", 2026, 6, 10, 21, 30),
        Reason.QUIET_HOURS,
    ),
    (
        "sms at 07:59 local",
        nothing,
        "sms",
        "care_reminder",
        "generic",
        None,
        local("America/New_York", 2026, 6, 10, 7, 59),
        Reason.QUIET_HOURS,
    ),
    (
        "sms at 08:00 local",
        nothing,
        "sms",
        "care_reminder",
        "generic",
        None,
        local("America/New_York", 2026, 6, 10, 8, 0),
        Reason.ALLOWED,
    ),
    (
        "email ignores quiet hours",
        nothing,
        "email",
        "care_reminder",
        "generic",
        None,
        local("America/New_York", 2026, 6, 10, 23, 0),
        Reason.ALLOWED,
    ),
    (
        "own quiet hours",
        lambda p: preference(p, quiet_start=datetime.time(12, 0), quiet_end=datetime.time(13, 0)),
        "sms",
        "care_reminder",
        "generic",
        None,
        NOON_NY,
        Reason.QUIET_HOURS,
    ),
    (
        "second sms in a day",
        sent("sms", "care_reminder", NOON_NY - datetime.timedelta(hours=2)),
        "sms",
        "care_reminder",
        "generic",
        None,
        NOON_NY,
        Reason.FREQUENCY_CAP,
    ),
    (
        "fourth sms in a week",
        sent(
            "sms",
            "survey",
            NOON_NY - datetime.timedelta(days=2),
            NOON_NY - datetime.timedelta(days=4),
            NOON_NY - datetime.timedelta(days=6),
        ),
        "sms",
        "care_reminder",
        "generic",
        None,
        NOON_NY,
        Reason.FREQUENCY_CAP,
    ),
    (
        "sms after 8 days",
        sent("sms", "survey", NOON_NY - datetime.timedelta(days=8)),
        "sms",
        "care_reminder",
        "generic",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "appointment reminders are not capped",
        sent("sms", "care_reminder", NOON_NY - datetime.timedelta(hours=1)),
        "sms",
        "appointment",
        "logistics",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
    (
        "appointment sms does not count toward caps",
        sent("sms", "appointment", NOON_NY - datetime.timedelta(hours=1)),
        "sms",
        "care_reminder",
        "generic",
        None,
        NOON_NY,
        Reason.ALLOWED,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setup", "channel", "purpose", "content", "topic", "at", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_may_contact_case_table(
    setup: Callable[[Patient], None],
    channel: str,
    purpose: str,
    content: str,
    topic: str | None,
    at: datetime.datetime,
    expected: Reason,
) -> None:
    patient = reachable_patient()
    setup(patient)
    patient.refresh_from_db()
    decision = may_contact(patient, channel, purpose, content, at, topic=topic)
    assert decision.reason == expected, decision
    assert bool(decision) is (expected == Reason.ALLOWED)


@pytest.mark.django_db
def test_every_reason_is_covered_by_the_case_table() -> None:
    assert {case[-1] for case in CASES} == set(Reason)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("zone", "at", "expected"),
    [
        # 22:00 UTC is 18:00 in New York (EDT), 15:00 in Phoenix (no DST), 12:00 in Honolulu.
        (
            "America/New_York",
            datetime.datetime(2026, 6, 10, 22, 0, tzinfo=datetime.UTC),
            Reason.ALLOWED,
        ),
        (
            "America/Phoenix",
            datetime.datetime(2026, 6, 10, 22, 0, tzinfo=datetime.UTC),
            Reason.ALLOWED,
        ),
        (
            "Pacific/Honolulu",
            datetime.datetime(2026, 6, 10, 22, 0, tzinfo=datetime.UTC),
            Reason.ALLOWED,
        ),
        # 03:30 UTC is 23:30 in New York, 20:30 in Phoenix, 17:30 in Honolulu.
        (
            "America/New_York",
            datetime.datetime(2026, 6, 11, 3, 30, tzinfo=datetime.UTC),
            Reason.QUIET_HOURS,
        ),
        (
            "America/Phoenix",
            datetime.datetime(2026, 6, 11, 3, 30, tzinfo=datetime.UTC),
            Reason.ALLOWED,
        ),
        (
            "Pacific/Honolulu",
            datetime.datetime(2026, 6, 11, 3, 30, tzinfo=datetime.UTC),
            Reason.ALLOWED,
        ),
        # 12:30 UTC is 08:30 EDT in New York but 05:30 in Phoenix.
        (
            "America/New_York",
            datetime.datetime(2026, 6, 10, 12, 30, tzinfo=datetime.UTC),
            Reason.ALLOWED,
        ),
        (
            "America/Phoenix",
            datetime.datetime(2026, 6, 10, 12, 30, tzinfo=datetime.UTC),
            Reason.QUIET_HOURS,
        ),
    ],
)
def test_quiet_hours_follow_the_patients_zone(
    zone: str, at: datetime.datetime, expected: Reason
) -> None:
    patient = reachable_patient(zone)
    assert may_contact(patient, "sms", "care_reminder", "generic", at).reason == expected


@pytest.mark.parametrize(
    ("at", "expected_end"),
    [
        # Spring forward, 2026-03-08: 02:00 EST jumps to 03:00 EDT. 01:30 EST is quiet and
        # the window ends at 08:00 EDT (12:00 UTC), not 08:00 EST.
        (
            local("America/New_York", 2026, 3, 8, 1, 30),
            datetime.datetime(2026, 3, 8, 12, 0, tzinfo=datetime.UTC),
        ),
        # The evening before: 21:30 EST on 03-07 ends at 08:00 EDT on 03-08.
        (
            local("America/New_York", 2026, 3, 7, 21, 30),
            datetime.datetime(2026, 3, 8, 12, 0, tzinfo=datetime.UTC),
        ),
        # Fall back, 2026-11-01: 01:30 happens twice; both are quiet until 08:00 EST (13:00 UTC).
        (
            local("America/New_York", 2026, 11, 1, 1, 30, fold=0),
            datetime.datetime(2026, 11, 1, 13, 0, tzinfo=datetime.UTC),
        ),
        (
            local("America/New_York", 2026, 11, 1, 1, 30, fold=1),
            datetime.datetime(2026, 11, 1, 13, 0, tzinfo=datetime.UTC),
        ),
        # Chicago too.
        (
            local("America/Chicago", 2026, 11, 1, 6, 0),
            datetime.datetime(2026, 11, 1, 14, 0, tzinfo=datetime.UTC),
        ),
    ],
)
def test_quiet_hours_end_on_the_local_wall_clock_across_dst(
    at: datetime.datetime, expected_end: datetime.datetime
) -> None:
    assert at.tzinfo is not None
    zone = str(at.tzinfo)
    end = quiet_until(at=at, zone=zone, start=datetime.time(21, 0), end=datetime.time(8, 0))
    assert end == expected_end


def test_a_quiet_window_ending_in_a_dst_gap_moves_forward() -> None:
    at = local("America/New_York", 2026, 3, 8, 1, 0)
    end = quiet_until(
        at=at, zone="America/New_York", start=datetime.time(1, 0), end=datetime.time(2, 30)
    )
    # 02:30 does not exist on 2026-03-08 in New York; the window ends at 03:30 EDT.
    assert end == datetime.datetime(2026, 3, 8, 7, 30, tzinfo=datetime.UTC)


@pytest.mark.django_db
def test_quiet_hours_and_caps_say_when_to_try_again() -> None:
    patient = reachable_patient()
    decision = may_contact(
        patient, "sms", "care_reminder", "generic", local("America/New_York", 2026, 6, 10, 22, 0)
    )
    assert decision.retry_at == local("America/New_York", 2026, 6, 11, 8, 0)
    earlier = NOON_NY - datetime.timedelta(hours=3)
    ContactEvent.objects.create(patient=patient, channel="sms", purpose="survey", at=earlier)
    capped = may_contact(patient, "sms", "care_reminder", "generic", NOON_NY)
    assert capped.reason == Reason.FREQUENCY_CAP
    assert capped.retry_at == earlier + datetime.timedelta(days=1)


@pytest.mark.django_db
def test_the_ledger_is_append_only_history_and_the_newest_answer_holds() -> None:
    patient = reachable_patient()
    at = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    assert consent_current(patient=patient, kind=ConsentKind.SMS, at=at) == ConsentStatus.GRANTED
    revoke(ConsentKind.SMS)(patient)
    assert consent_current(patient=patient, kind=ConsentKind.SMS, at=at) == ConsentStatus.REVOKED
    # Before the revocation the grant held: the history answers for any moment.
    before = datetime.datetime(2026, 1, 15, tzinfo=datetime.UTC)
    assert (
        consent_current(patient=patient, kind=ConsentKind.SMS, at=before) == ConsentStatus.GRANTED
    )
    assert [
        r.status for r in patient.consents.filter(kind=ConsentKind.SMS).order_by("captured_at")
    ] == [
        "granted",
        "revoked",
    ]


@pytest.mark.django_db
def test_a_consent_past_its_period_reads_as_expired() -> None:
    patient = reachable_patient()
    consent_record(
        patient=patient,
        kind=ConsentKind.TELEHEALTH,
        status=ConsentStatus.GRANTED,
        capture_method=CaptureMethod.STAFF_ESIGNATURE,
        captured_at=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        period_end=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    )
    at = datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)
    assert (
        consent_current(patient=patient, kind=ConsentKind.TELEHEALTH, at=at)
        == ConsentStatus.EXPIRED
    )
