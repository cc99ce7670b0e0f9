"""The journey engine: definitions, time, enrolment once per event, exits, tasks."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from careloop.core import clock
from careloop.outreach.journeys import (
    JourneyInvalid,
    at_local_time,
    enrollments_advance,
    journey_save,
    journey_validate,
    parse_duration,
)
from careloop.outreach.models import (
    Enrollment,
    EnrollmentStatus,
    Journey,
    StaffTask,
    Trigger,
)
from careloop.outreach.triggers import journeys_scan
from careloop.patients.models import PatientTag
from tests.outreach.conftest import NOON, advance, reachable_patient
from tests.patients.builders import add_appointment, make_location, make_provider, make_user

pytestmark = pytest.mark.django_db
UTC = datetime.UTC


def _journey(key: str, trigger: str, steps: list[dict[str, Any]], **extra: Any) -> Journey:
    Journey.objects.filter(enabled=True).update(enabled=False)  # only this one runs
    journey = Journey(
        key=key,
        name=key.title(),
        trigger=trigger,
        purpose=extra.pop("purpose", "appointment"),
        definition={"steps": steps, "exits": extra.pop("exits", [])},
        updated_at=clock.now(),
        **extra,
    )
    return journey_save(journey)


def test_definitions_are_checked_before_they_are_saved() -> None:
    assert journey_validate({"steps": []}) == ["steps: a journey needs at least one step"]
    errors = journey_validate(
        {
            "steps": [
                {"kind": "wait", "for": "7 days"},
                {"kind": "send", "template": "x", "channels": ["pigeon"]},
                {"kind": "branch", "if": "appointment_confirmed", "then": "nowhere"},
                {"kind": "dance"},
                {"kind": "update", "field": "lifecycle_stage", "value": "x"},
            ],
            "exits": ["moon_phase"],
        }
    )
    assert any(e.startswith("step 1: for: not a duration") for e in errors)
    assert "step 2: unknown channel 'pigeon'" in errors
    assert "step 3: branch 'then' goes to an unknown step 'nowhere'" in errors
    assert any(e.startswith("step 4: kind must be one of") for e in errors)
    assert any(e.startswith("step 5: update 'field' must be one of") for e in errors)
    assert any(e.startswith("exits: unknown condition 'moon_phase'") for e in errors)
    journey = Journey(key="bad", name="Bad", trigger=Trigger.NO_SHOW, purpose="appointment")
    with pytest.raises(JourneyInvalid):
        journey_save(journey, definition={"steps": [{"kind": "wait"}]})
    assert not Journey.objects.filter(key="bad").exists()


def test_durations() -> None:
    assert parse_duration("P7D") == datetime.timedelta(days=7)
    assert parse_duration("-P2D") == datetime.timedelta(days=-2)
    assert parse_duration("P1DT2H30M") == datetime.timedelta(days=1, hours=2, minutes=30)
    for bad in ("P", "7D", "PT", "P1W", ""):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("zone", "day", "local", "expected_utc"),
    [
        # Spring forward (2026-03-08): 02:30 does not exist; it moves forward by the gap.
        ("America/New_York", datetime.date(2026, 3, 8), "02:30", "2026-03-08T07:30"),
        ("America/Chicago", datetime.date(2026, 3, 8), "02:30", "2026-03-08T08:30"),
        ("America/Denver", datetime.date(2026, 3, 8), "02:30", "2026-03-08T09:30"),
        ("America/Los_Angeles", datetime.date(2026, 3, 8), "02:30", "2026-03-08T10:30"),
        # Fall back (2026-11-01): 01:30 happens twice; the first one, once.
        ("America/New_York", datetime.date(2026, 11, 1), "01:30", "2026-11-01T05:30"),
        ("America/Chicago", datetime.date(2026, 11, 1), "01:30", "2026-11-01T06:30"),
        ("America/Los_Angeles", datetime.date(2026, 11, 1), "01:30", "2026-11-01T08:30"),
        # No DST in Arizona; ordinary days either side of the transitions.
        ("America/Phoenix", datetime.date(2026, 3, 8), "02:30", "2026-03-08T09:30"),
        ("America/New_York", datetime.date(2026, 3, 9), "10:00", "2026-03-09T14:00"),
        ("America/New_York", datetime.date(2026, 11, 2), "10:00", "2026-11-02T15:00"),
    ],
)
def test_local_times_across_the_2026_transitions(
    zone: str, day: datetime.date, local: str, expected_utc: str
) -> None:
    noon = datetime.datetime.combine(day, datetime.time(12), tzinfo=UTC)
    at = at_local_time(noon, local, zone)
    assert at == datetime.datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)
    # Wall clock after the move: in the gap, 03:30; in the repeated hour, the first.
    wall = at.astimezone(__import__("zoneinfo").ZoneInfo(zone))
    if expected_utc.endswith("07:30") and zone == "America/New_York":
        assert (wall.hour, wall.minute, wall.fold) == (3, 30, 0)


def test_a_time_already_past_today_moves_to_tomorrow() -> None:
    late = datetime.datetime(2026, 6, 10, 23, 0, tzinfo=UTC)  # 19:00 in New York
    at = at_local_time(late, "09:00", "America/New_York", not_before=True)
    assert at == datetime.datetime(2026, 6, 11, 13, 0, tzinfo=UTC)


def _clinic() -> Any:
    return make_provider(make_location())


def test_an_event_enrols_once_however_often_it_is_seen() -> None:
    journey = _journey(
        "booked-task", Trigger.APPOINTMENT_BOOKED, [{"kind": "task", "title": "Call"}]
    )
    patient = reachable_patient()
    provider = _clinic()
    appointment = add_appointment(patient, provider, NOON + datetime.timedelta(days=10))
    assert journeys_scan() == {"booked-task": 1}
    assert journeys_scan() == {}
    enrollment = Enrollment.objects.get(journey=journey)
    assert enrollment.subject_id == str(appointment.pk)
    assert enrollment.trigger_key == f"appointment:{appointment.pk}:booked"


def test_old_and_past_events_enrol_no_one() -> None:
    _journey("booked-task", Trigger.APPOINTMENT_BOOKED, [{"kind": "task", "title": "Call"}])
    patient = reachable_patient()
    provider = _clinic()
    with clock.frozen(NOON - datetime.timedelta(days=30)):  # booked a month ago
        add_appointment(patient, provider, NOON + datetime.timedelta(days=3))
    add_appointment(patient, provider, NOON - datetime.timedelta(days=1))  # in the past
    assert journeys_scan() == {}


def test_a_step_runs_once_even_when_its_transaction_is_repeated() -> None:
    journey = _journey(
        "no-show-call",
        Trigger.NO_SHOW,
        [
            {"kind": "update", "field": "tag", "value": "missed-visit"},
            {"kind": "task", "title": "Call the patient", "due": "PT4H"},
            {"kind": "wait", "for": "P1D"},
            {"kind": "task", "title": "Call again"},
        ],
    )
    patient = reachable_patient()
    add_appointment(patient, _clinic(), NOON - datetime.timedelta(hours=2), status="noshow")
    journeys_scan()
    assert enrollments_advance() == {"waiting": 1}
    assert list(StaffTask.objects.values_list("title", flat=True)) == ["Call the patient"]
    assert PatientTag.objects.filter(patient=patient, tag="missed-visit").exists()
    assert enrollments_advance() == {}  # nothing due until the wait ends
    # A worker that died after the task was written: the step is re-run, one task.
    enrollment = Enrollment.objects.get(journey=journey)
    Enrollment.objects.filter(pk=enrollment.pk).update(step=1, state={}, next_run_at=clock.now())
    assert enrollments_advance() == {"waiting": 1}
    assert StaffTask.objects.count() == 1
    with advance(86400 + 1):
        assert enrollments_advance() == {"completed": 1}
    assert sorted(StaffTask.objects.values_list("title", flat=True)) == [
        "Call again",
        "Call the patient",
    ]
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    kinds = list(enrollment.events.values_list("kind", "outcome"))
    assert kinds[-2:] == [("task", "created"), ("end", "completed")]
    assert kinds.count(("update", "tag=missed-visit")) == 1


def test_an_exit_condition_ends_the_journey_before_the_next_step() -> None:
    journey = _journey(
        "no-show-recover",
        Trigger.NO_SHOW,
        [{"kind": "wait", "for": "P7D"}, {"kind": "task", "title": "Call to rebook"}],
        exits=["appointment_booked"],
    )
    patient = reachable_patient()
    provider = _clinic()
    add_appointment(patient, provider, NOON - datetime.timedelta(hours=1), status="noshow")
    journeys_scan()
    enrollments_advance()
    with advance(3 * 86400):
        add_appointment(patient, provider, NOON + datetime.timedelta(days=9))
    with advance(7 * 86400 + 1):
        assert enrollments_advance() == {"exited": 1}
    enrollment = Enrollment.objects.get(journey=journey)
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "appointment_booked")
    assert not StaffTask.objects.exists()


def test_an_edit_is_a_new_version_and_running_enrollments_keep_theirs() -> None:
    journey = _journey(
        "versions",
        Trigger.NO_SHOW,
        [{"kind": "wait", "for": "P1D"}, {"kind": "task", "title": "Version one task"}],
    )
    patient = reachable_patient()
    add_appointment(patient, _clinic(), NOON - datetime.timedelta(hours=1), status="noshow")
    journeys_scan()
    enrollments_advance()
    admin = make_user("admin")
    journey_save(
        journey,
        definition={"steps": [{"kind": "task", "title": "Version two task"}]},
        actor=admin,
    )
    assert journey.version == 2
    assert journey.revisions.count() == 2
    with advance(86400 + 1):
        enrollments_advance()
    assert list(StaffTask.objects.values_list("title", flat=True)) == ["Version one task"]


def test_only_an_admin_edits_journeys() -> None:
    from careloop.security.permissions import PermissionDenied

    journey = _journey("perm", Trigger.NO_SHOW, [{"kind": "task", "title": "Call"}])
    with pytest.raises(PermissionDenied):
        journey_save(journey, enabled=False, actor=make_user("front_desk"))
    journey_save(journey, enabled=False, actor=make_user("admin"))
    assert Journey.objects.get(pk=journey.pk).enabled is False


def test_the_built_in_journeys_are_installed_and_valid() -> None:
    keys = set(Journey.objects.filter(built_in=True).values_list("key", flat=True))
    assert {
        "new-lead-welcome",
        "onboarding",
        "pre-visit",
        "post-visit",
        "no-show-recovery",
        "care-gap-recall",
        "chronic-cadence",
        "medication-adherence",
        "reactivation",
    } <= keys
    for journey in Journey.objects.filter(built_in=True):
        assert journey_validate(journey.definition) == [], journey.key


def test_a_dry_run_decides_every_step_and_sends_nothing(vendors: None, provider: Any) -> None:
    from careloop.outreach.dry_run import journey_dry_run
    from careloop.outreach.models import Message

    journey = Journey.objects.get(key="no-show-recovery")
    Journey.objects.exclude(pk=journey.pk).update(enabled=False)
    clinic = _clinic()
    reachable = reachable_patient()
    silent = reachable_patient(mobile="+16175550109", sms_consent=False)
    for patient in (reachable, silent):
        add_appointment(patient, clinic, NOON - datetime.timedelta(hours=2), status="noshow")
    result = journey_dry_run(journey)
    assert (result.found, result.simulated) == (2, 2)
    first_send = result.steps[0]
    assert first_send.outcomes == {
        "sms: queued (allowed)": 1,
        # No SMS consent: the e-mail fallback carries it.
        "email: queued (allowed)": 1,
    }
    assert result.ends == {"completed": 2}
    assert result.tasks == 2
    assert result.samples and "Rosa" not in result.samples[0].subject
    # Nothing stayed behind, nothing was sent.
    assert not Message.objects.exists()
    assert not Enrollment.objects.exists()
    assert provider.delivered == []


def test_the_template_page_refuses_a_diagnosis_in_a_text_and_previews_a_good_one(
    client: Any,
) -> None:
    from careloop.outreach.models import MessageTemplate
    from tests.security.personas import force_verified_login

    force_verified_login(client, make_user("admin"))
    url = "/outreach/templates/noshow-reschedule/sms/en/"
    page = client.get(url, secure=True)
    assert page.status_code == 200 and b"Preview with a sample patient" in page.content
    bad = client.post(
        url,
        {"action": "save", "content_class": "logistics", "body": "About {{ condition.name }}"},
        secure=True,
    )
    assert bad.status_code == 400
    assert b"condition.name" in bad.content
    assert MessageTemplate.objects.filter(key="noshow-reschedule", channel="sms").count() == 2
    good = client.post(
        url,
        {
            "action": "save",
            "content_class": "logistics",
            "body": "Missed you. {{ link.reschedule }}",
        },
        secure=True,
    )
    assert good.status_code == 302
    active = MessageTemplate.objects.get(
        key="noshow-reschedule", channel="sms", language="en", active=True
    )
    assert active.body == "Missed you. {{ link.reschedule }}" and active.version == 2


def test_test_mode_sends_only_to_the_allowlist(settings: Any) -> None:
    from careloop.consent.models import Channel, ContentClass, Purpose
    from careloop.outreach.outbox import NOT_ALLOWLISTED, Rendered, message_enqueue
    from tests.outreach.conftest import MOBILE

    settings.OUTREACH_TEST_MODE = True
    settings.OUTREACH_TEST_ALLOWLIST = [MOBILE]
    listed = reachable_patient()
    stranger = reachable_patient(mobile="+16175550177")
    sent = [
        message_enqueue(
            patient=patient,
            channel=Channel.SMS,
            purpose=Purpose.APPOINTMENT,
            content_class=ContentClass.LOGISTICS,
            template_id="previsit-7d",
            template_version=1,
            rendered=Rendered(body="See you Tuesday."),
        )
        for patient in (listed, stranger)
    ]
    assert [m.status for m in sent] == ["queued", "withheld"]
    assert sent[1].scheduled_reason == NOT_ALLOWLISTED


def test_a_reminder_in_the_spring_forward_gap_runs_once_after_it() -> None:
    journey = _journey(
        "dst",
        Trigger.NO_SHOW,
        [
            {"kind": "wait", "until": {"anchor": "now", "offset": "P1D", "at_local": "02:30"}},
            {"kind": "task", "title": "After the gap"},
        ],
    )
    patient = reachable_patient()  # New York
    saturday = datetime.datetime(2026, 3, 7, 17, 0, tzinfo=UTC)
    with clock.frozen(saturday):
        add_appointment(patient, _clinic(), saturday - datetime.timedelta(hours=1), "noshow")
        journeys_scan()
        enrollments_advance()
    enrollment = Enrollment.objects.get(journey=journey)
    # 02:30 on 8 March does not exist in New York: 03:30 EDT, 07:30 UTC.
    assert enrollment.next_run_at == datetime.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    with clock.frozen(enrollment.next_run_at):
        assert enrollments_advance() == {"completed": 1}
        assert enrollments_advance() == {}
    assert StaffTask.objects.count() == 1
