"""Slot search: weekly hours in each location's zone, daylight-saving changes, booking
rules (lead time, horizon, buffer, per-day cap) and exceptions."""

from __future__ import annotations

import datetime

import pytest

from careloop.core import clock
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AvailabilityException,
    ExceptionKind,
)
from careloop.scheduling.slots import slots_search
from tests.patients.builders import make_provider
from tests.scheduling.practice import (
    AT,
    DST_SUNDAY,
    LOS_ANGELES,
    MONDAY_AFTER_DST,
    MONDAY_BEFORE_DST,
    UTC,
    Practice,
    local,
    make_practice,
    weekly,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def practice() -> Practice:
    return make_practice()


def _starts(
    practice: Practice, first: datetime.date, last: datetime.date | None = None
) -> list[datetime.datetime]:
    found = slots_search(
        appointment_type=practice.visit, start_date=first, end_date=last or first, at=AT
    )
    return [slot.start for slot in found]


def test_weekly_hours_become_slots_in_the_location_time_zone(practice: Practice) -> None:
    starts = _starts(practice, MONDAY_BEFORE_DST)
    # 09:00-12:00 New York time (UTC-5 in winter), every 30 minutes.
    assert starts[0] == datetime.datetime(2026, 3, 2, 14, tzinfo=UTC)
    assert len(starts) == 6
    assert starts[-1] == local(MONDAY_BEFORE_DST, 11, 30)


def test_slots_keep_the_local_wall_time_across_the_daylight_saving_change(
    practice: Practice,
) -> None:
    before = _starts(practice, MONDAY_BEFORE_DST)[0]
    after = _starts(practice, MONDAY_AFTER_DST)[0]
    assert before.astimezone(UTC).hour == 14
    assert after.astimezone(UTC).hour == 13
    assert local(MONDAY_AFTER_DST, 9) == after


def test_hours_that_span_the_spring_forward_gap_are_as_long_as_the_clock_says(
    practice: Practice,
) -> None:
    # Sunday 01:00-04:00 on the change day is only two real hours.
    weekly(practice.doctor, practice.clinic, 6, datetime.time(1), datetime.time(4))
    starts = _starts(practice, DST_SUNDAY)
    assert starts == [datetime.datetime(2026, 3, 8, 6, m, tzinfo=UTC) for m in (0, 30)] + [
        datetime.datetime(2026, 3, 8, 7, m, tzinfo=UTC) for m in (0, 30)
    ]


def test_a_provider_at_two_locations_gets_each_location_s_zone(practice: Practice) -> None:
    weekly(practice.doctor, practice.west, 1, datetime.time(9), datetime.time(10))
    found = slots_search(
        appointment_type=practice.visit,
        start_date=MONDAY_BEFORE_DST,
        end_date=MONDAY_BEFORE_DST + datetime.timedelta(days=1),
        at=AT,
    )
    tuesday = [s for s in found if s.location_id == practice.west.pk]
    assert [s.start for s in tuesday] == [
        local(datetime.date(2026, 3, 3), 9, 0, LOS_ANGELES),
        local(datetime.date(2026, 3, 3), 9, 30, LOS_ANGELES),
    ]
    only_west = slots_search(
        appointment_type=practice.visit,
        locations=[practice.west],
        start_date=MONDAY_BEFORE_DST,
        end_date=MONDAY_BEFORE_DST + datetime.timedelta(days=1),
        at=AT,
    )
    assert only_west == tuesday


def test_lead_time_hides_slots_too_soon_and_the_horizon_those_too_far(
    practice: Practice,
) -> None:
    practice.visit.lead_minutes = 90
    practice.visit.horizon_days = 7
    practice.visit.save()
    at = local(MONDAY_BEFORE_DST, 9, 15)
    found = slots_search(
        appointment_type=practice.visit,
        start_date=MONDAY_BEFORE_DST,
        end_date=MONDAY_BEFORE_DST + datetime.timedelta(days=14),
        at=at,
    )
    starts = [s.start for s in found]
    # Not before 10:45 today; nothing after 09:15 a week on.
    assert starts[0] == local(MONDAY_BEFORE_DST, 11)
    assert starts[-1] == local(MONDAY_AFTER_DST, 9)


def test_the_buffer_spaces_slots_and_keeps_clear_of_bookings(practice: Practice) -> None:
    practice.visit.buffer_minutes = 10
    practice.visit.save()
    starts = _starts(practice, MONDAY_BEFORE_DST)
    assert starts == [
        local(MONDAY_BEFORE_DST, h, m) for h, m in ((9, 0), (9, 40), (10, 20), (11, 0))
    ]


def test_the_per_day_cap_closes_a_day_once_reached(practice: Practice) -> None:
    practice.visit.per_day_cap = 1
    practice.visit.save()
    _appointment(practice, local(MONDAY_BEFORE_DST, 11, 30))
    assert _starts(practice, MONDAY_BEFORE_DST) == []
    assert len(_starts(practice, MONDAY_AFTER_DST)) == 6


def test_appointments_from_the_ehr_hold_their_time_and_cancelled_ones_do_not(
    practice: Practice,
) -> None:
    _appointment(practice, local(MONDAY_BEFORE_DST, 9, 10), source="ehr")
    cancelled = _appointment(practice, local(MONDAY_BEFORE_DST, 11))
    cancelled.status = AppointmentStatus.CANCELLED
    cancelled.save(update_fields=["status"])
    starts = _starts(practice, MONDAY_BEFORE_DST)
    # 09:10-09:40 takes the 09:00 and 09:30 slots; 11:00 is free again.
    assert starts == [
        local(MONDAY_BEFORE_DST, h, m) for h, m in ((10, 0), (10, 30), (11, 0), (11, 30))
    ]


def test_a_practice_holiday_closes_every_provider_for_the_day(practice: Practice) -> None:
    other = make_provider(practice.clinic, name="Dr. Sam Okafor")
    weekly(other, practice.clinic, 0, datetime.time(13), datetime.time(14))
    AvailabilityException.objects.create(
        kind=ExceptionKind.BLOCK, date=MONDAY_BEFORE_DST, label="holiday"
    )
    assert _starts(practice, MONDAY_BEFORE_DST) == []
    assert len(_starts(practice, MONDAY_AFTER_DST)) == 8


def test_a_block_removes_part_of_a_day_and_extra_hours_add_a_day(practice: Practice) -> None:
    AvailabilityException.objects.create(
        kind=ExceptionKind.BLOCK,
        provider=practice.doctor,
        date=MONDAY_BEFORE_DST,
        start_time=datetime.time(10),
        end_time=datetime.time(11),
        label="training",
    )
    saturday = datetime.date(2026, 3, 7)
    AvailabilityException.objects.create(
        kind=ExceptionKind.EXTRA,
        provider=practice.doctor,
        location=practice.clinic,
        date=saturday,
        start_time=datetime.time(8),
        end_time=datetime.time(9),
    )
    assert _starts(practice, MONDAY_BEFORE_DST) == [
        local(MONDAY_BEFORE_DST, h, m) for h, m in ((9, 0), (9, 30), (11, 0), (11, 30))
    ]
    assert _starts(practice, saturday) == [local(saturday, 8), local(saturday, 8, 30)]


def test_weekly_hours_apply_only_within_their_validity(practice: Practice) -> None:
    practice.doctor.availability.update(valid_to=MONDAY_BEFORE_DST)
    assert len(_starts(practice, MONDAY_BEFORE_DST)) == 6
    assert _starts(practice, MONDAY_AFTER_DST) == []


def test_inactive_providers_offer_no_slots(practice: Practice) -> None:
    practice.doctor.active = False
    practice.doctor.save(update_fields=["active"])
    with clock.frozen(AT):
        assert (
            slots_search(
                appointment_type=practice.visit,
                start_date=MONDAY_BEFORE_DST,
                end_date=MONDAY_BEFORE_DST,
            )
            == []
        )


def _appointment(
    practice: Practice, start: datetime.datetime, source: str = "careloop"
) -> Appointment:
    return Appointment.objects.create(
        patient=practice.patient,
        provider=practice.doctor,
        location=practice.clinic,
        appointment_type=practice.visit,
        start=start,
        end=start + datetime.timedelta(minutes=30),
        busy_until=None if source == "ehr" else start + datetime.timedelta(minutes=30),
        source=source,
        created_at=AT,
    )
