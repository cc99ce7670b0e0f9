"""Automatic no-shows: a careloop booking nobody checked in for is marked no-show N
minutes after its start, through the booking service, when the practice turned it on."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest

from careloop.core import clock
from careloop.outreach.models import Journey, Trigger
from careloop.outreach.triggers import trigger_rows
from careloop.patients.models import TimelineEvent
from careloop.scheduling.booking import appointment_book, appointment_check_in
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.scheduling.no_show import no_show_sweep
from careloop.security.models import AuditEvent
from tests.patients.builders import add_appointment, make_patient
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, Practice, local, make_practice

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)
MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def practice() -> Iterator[Practice]:
    with clock.frozen(AT):
        yield make_practice()


def _book(practice: Practice, start: datetime.datetime) -> Appointment:
    with clock.frozen(AT):
        return appointment_book(
            actor=practice.desk,
            patient=practice.patient,
            appointment_type=practice.visit,
            provider=practice.doctor,
            location=practice.clinic,
            start=start,
        )


def test_a_visit_nobody_checked_in_for_becomes_a_no_show_after_the_setting(
    practice: Practice, settings: Any
) -> None:
    # Given the practice marks no-shows after 20 minutes, and two visits at 09:00 and 09:30
    settings.SCHEDULING_AUTO_NO_SHOW_MINUTES = 20
    missed = _book(practice, NINE)
    arrived = _book(practice, NINE + 30 * MINUTE)
    with clock.frozen(NINE + 30 * MINUTE):
        appointment_check_in(actor=practice.desk, appointment=arrived)
    # When the sweep runs at 09:19, then at 09:20 (and again)
    assert no_show_sweep(at=NINE + 19 * MINUTE) == 0
    with clock.frozen(NINE + 20 * MINUTE):
        assert no_show_sweep() == 1
        assert no_show_sweep() == 0
    # Then only the visit nobody arrived for is a no-show, with its timeline and audit
    missed.refresh_from_db()
    arrived.refresh_from_db()
    assert missed.status == AppointmentStatus.NO_SHOW
    assert arrived.status == AppointmentStatus.CHECKED_IN
    event = AuditEvent.objects.get(action="appointment.no_show", resource_id=str(missed.pk))
    assert (event.actor_kind, event.actor_id) == ("system", "scheduling.no_show")
    assert TimelineEvent.objects.filter(
        ref_id=str(missed.pk), summary="Appointment no-show automatically"
    ).exists()
    # And the no-show journey's trigger sees it
    journey = Journey.objects.filter(trigger=Trigger.NO_SHOW).first()
    assert journey is not None
    rows = trigger_rows(journey, at=NINE + 21 * MINUTE)
    assert f"appointment:{missed.pk}:noshow" in {row[1] for row in rows}


def test_off_by_default_and_the_ehrs_visits_are_left_to_the_ehr(
    practice: Practice, settings: Any
) -> None:
    visit = _book(practice, NINE)
    assert settings.SCHEDULING_AUTO_NO_SHOW_MINUTES is None
    assert no_show_sweep(at=NINE + 120 * MINUTE) == 0
    settings.SCHEDULING_AUTO_NO_SHOW_MINUTES = 10
    other = make_patient("Eva", "Ehr", datetime.date(1975, 5, 5))
    with clock.frozen(AT):
        from_ehr = add_appointment(other, practice.doctor, NINE + 60 * MINUTE)
        Appointment.objects.filter(pk=from_ehr.pk).update(source="ehr")
    with clock.frozen(NINE + 120 * MINUTE):
        assert no_show_sweep() == 1
    assert Appointment.objects.get(pk=from_ehr.pk).status == AppointmentStatus.BOOKED
    assert Appointment.objects.get(pk=visit.pk).status == AppointmentStatus.NO_SHOW
