"""Booking and the appointment's life: each change writes the row outreach reads, the
timeline and the audit log; a taken or closed time gives the next free ones."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from django.db import IntegrityError, connection, transaction

from careloop.core import clock
from careloop.core.errors import PermissionDenied
from careloop.patients.models import TimelineEvent
from careloop.scheduling.booking import (
    AppointmentStateError,
    SlotTaken,
    SlotUnavailable,
    appointment_book,
    appointment_cancel,
    appointment_check_in,
    appointment_complete,
    appointment_no_show,
    appointment_reschedule,
)
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.models import AuditEvent, Role
from tests.patients.builders import make_patient, make_user
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, Practice, local, make_practice

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)


@pytest.fixture
def practice() -> Iterator[Practice]:
    with clock.frozen(AT):
        yield make_practice()


def _book(practice: Practice, start: datetime.datetime = NINE, **extra: object) -> Appointment:
    return appointment_book(
        actor=extra.pop("actor", practice.desk),
        patient=extra.pop("patient", practice.patient),
        appointment_type=practice.visit,
        provider=practice.doctor,
        location=practice.clinic,
        start=start,
    )


def _actions(appointment: Appointment) -> list[str]:
    """The audit actions on the appointment, sorted (the frozen clock stamps them alike)."""
    rows = AuditEvent.objects.filter(resource_id=str(appointment.pk))
    return sorted(rows.values_list("action", flat=True))


def test_booking_writes_the_appointment_the_timeline_and_the_audit_log(
    practice: Practice,
) -> None:
    appointment = _book(practice)
    stored = Appointment.objects.get(pk=appointment.pk)
    assert (stored.status, stored.source, stored.start) == (
        AppointmentStatus.BOOKED,
        "careloop",
        NINE,
    )
    assert stored.created_at == AT
    assert stored.busy_until == stored.end
    entry = TimelineEvent.objects.get(ref_id=str(appointment.pk))
    assert entry.summary == "Appointment booked"
    assert _actions(appointment) == ["appointment.book"]


def test_booking_a_taken_time_says_so_and_offers_the_next_free_slots(practice: Practice) -> None:
    _book(practice)
    other = make_patient("Ben", "Okoye", datetime.date(1985, 2, 3))
    with pytest.raises(SlotTaken) as taken:
        _book(practice, patient=other)
    assert "just taken" in str(taken.value)
    starts = [slot.start for slot in taken.value.alternatives]
    assert starts[:2] == [local(MONDAY_BEFORE_DST, 9, 30), local(MONDAY_BEFORE_DST, 10)]
    assert Appointment.objects.count() == 1


def test_a_time_outside_the_hours_is_not_bookable(practice: Practice) -> None:
    with pytest.raises(SlotUnavailable) as closed:
        _book(practice, start=local(MONDAY_BEFORE_DST, 13))
    assert not isinstance(closed.value, SlotTaken)
    assert closed.value.alternatives
    assert Appointment.objects.count() == 0


def test_a_role_without_appointment_rights_may_not_book(practice: Practice) -> None:
    with pytest.raises(PermissionDenied):
        _book(practice, actor=make_user(Role.MARKETING, username="mkt"))
    assert Appointment.objects.count() == 0


def test_cancelling_frees_the_slot_for_someone_else(practice: Practice) -> None:
    first = _book(practice)
    appointment_cancel(actor=practice.desk, appointment=first)
    other = make_patient("Ben", "Okoye", datetime.date(1985, 2, 3))
    second = _book(practice, patient=other)
    assert Appointment.objects.get(pk=first.pk).status == AppointmentStatus.CANCELLED
    assert second.start == first.start
    assert _actions(first) == ["appointment.book", "appointment.cancel"]  # sorted


def test_rescheduling_books_the_new_time_and_frees_the_old(practice: Practice) -> None:
    first = _book(practice)
    ten = local(MONDAY_BEFORE_DST, 10)
    moved = appointment_reschedule(actor=practice.desk, appointment=first, start=ten)
    assert (moved.start, moved.rescheduled_from_id) == (ten, first.pk)
    assert Appointment.objects.get(pk=first.pk).status == AppointmentStatus.CANCELLED
    # The old 09:00 is bookable again.
    other = make_patient("Ben", "Okoye", datetime.date(1985, 2, 3))
    assert _book(practice, patient=other).start == NINE


def test_rescheduling_onto_a_taken_time_changes_nothing(practice: Practice) -> None:
    first = _book(practice)
    other = make_patient("Ben", "Okoye", datetime.date(1985, 2, 3))
    _book(practice, patient=other, start=local(MONDAY_BEFORE_DST, 10))
    with pytest.raises(SlotTaken):
        appointment_reschedule(
            actor=practice.desk, appointment=first, start=local(MONDAY_BEFORE_DST, 10)
        )
    assert Appointment.objects.get(pk=first.pk).status == AppointmentStatus.BOOKED
    assert Appointment.objects.count() == 2


def test_check_in_then_complete_is_what_journeys_read(practice: Practice) -> None:
    appointment = _book(practice)
    appointment_check_in(actor=practice.desk, appointment=appointment)
    done = appointment_complete(actor=practice.desk, appointment=appointment)
    assert Appointment.objects.get(pk=done.pk).status == AppointmentStatus.FULFILLED
    summaries = TimelineEvent.objects.filter(ref_id=str(appointment.pk)).order_by("at", "id")
    assert set(summaries.values_list("summary", flat=True)) == {
        "Appointment booked",
        "Appointment checked in",
        "Appointment completed",
    }
    assert _actions(appointment) == [
        "appointment.book",
        "appointment.check_in",
        "appointment.complete",
    ]


def test_a_no_show_frees_the_time_and_cannot_then_be_cancelled(practice: Practice) -> None:
    appointment = _book(practice)
    appointment_no_show(actor=practice.desk, appointment=appointment)
    with pytest.raises(AppointmentStateError, match="cannot cancel an appointment that is no-show"):
        appointment_cancel(actor=practice.desk, appointment=appointment)
    assert Appointment.objects.get(pk=appointment.pk).status == AppointmentStatus.NO_SHOW


def test_a_completed_visit_cannot_be_marked_no_show(practice: Practice) -> None:
    appointment = _book(practice)
    appointment_complete(actor=practice.desk, appointment=appointment)
    with pytest.raises(AppointmentStateError):
        appointment_no_show(actor=practice.desk, appointment=appointment)


def test_the_database_refuses_overlapping_careloop_bookings_on_postgresql(
    practice: Practice,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the exclusion constraint is PostgreSQL's; SQLite serialises bookings")
    first = _book(practice)
    clash = Appointment(
        patient=practice.patient,
        provider=practice.doctor,
        location=practice.clinic,
        appointment_type=practice.visit,
        start=first.start + datetime.timedelta(minutes=15),
        end=first.end + datetime.timedelta(minutes=15),
        busy_until=first.end + datetime.timedelta(minutes=15),
        created_at=AT,
    )
    with pytest.raises(IntegrityError, match="appt_no_double_booking"), transaction.atomic():
        clash.save(force_insert=True)


def test_overlapping_appointments_reported_by_the_ehr_are_accepted(practice: Practice) -> None:
    for _ in range(2):
        Appointment.objects.create(
            patient=practice.patient,
            provider=practice.doctor,
            location=practice.clinic,
            appointment_type=practice.visit,
            start=NINE,
            end=NINE + datetime.timedelta(minutes=30),
            source="ehr",
            created_at=AT,
        )
    assert Appointment.objects.filter(source="ehr").count() == 2
    with pytest.raises(SlotTaken):
        _book(practice)
