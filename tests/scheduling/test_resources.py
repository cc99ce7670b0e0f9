"""Rooms and equipment: a type that needs a room is bookable only while the provider
and some active room of that kind at the location are free; the booking takes one and
keeps it from anyone else, on either engine (PostgreSQL also by its exclusion
constraint); a reschedule gives the old room back."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from careloop.core import clock
from careloop.scheduling.booking import (
    SlotTaken,
    SlotUnavailable,
    appointment_book,
    appointment_reschedule,
)
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Provider,
    Resource,
    ResourceKind,
)
from careloop.scheduling.slots import slots_search
from tests.patients.builders import make_patient, make_provider
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, Practice, local, make_practice, weekly
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)
HALF_NINE = local(MONDAY_BEFORE_DST, 9, 30)
TEN = local(MONDAY_BEFORE_DST, 10)


@dataclass
class Rooms:
    practice: Practice
    colleague: Provider
    procedure: AppointmentType
    room: Resource


@pytest.fixture
def rooms() -> Iterator[Rooms]:
    """Dr. Chen and Dr. Haddad, both Mondays 09:00-12:00 at the clinic, which has one
    procedure room; a 30-minute procedure needs a room."""
    with clock.frozen(AT):
        practice = make_practice()
        colleague = make_provider(practice.clinic, "Dr. Omar Haddad")
        weekly(colleague, practice.clinic, 0, datetime.time(9), datetime.time(12))
        procedure = AppointmentType.objects.create(
            code="procedure", name="Minor procedure", minutes=30, resource_kind=ResourceKind.ROOM
        )
        room = Resource.objects.create(
            location=practice.clinic, name="Procedure room", kind=ResourceKind.ROOM
        )
        yield Rooms(practice, colleague, procedure, room)


def _book(
    rooms: Rooms,
    provider: Provider,
    start: datetime.datetime = NINE,
    kind: AppointmentType | None = None,
) -> Appointment:
    return appointment_book(
        actor=rooms.practice.desk,
        patient=make_patient("Ben", f"Okoye{provider.pk.hex[:6]}", datetime.date(1985, 2, 3)),
        appointment_type=kind or rooms.procedure,
        provider=provider,
        location=rooms.practice.clinic,
        start=start,
    )


def _starts(
    rooms: Rooms, provider: Provider, kind: AppointmentType | None = None
) -> set[datetime.datetime]:
    found = slots_search(
        appointment_type=kind or rooms.procedure,
        providers=[provider],
        start_date=MONDAY_BEFORE_DST,
        end_date=MONDAY_BEFORE_DST,
    )
    return {slot.start for slot in found}


def test_booking_a_type_that_needs_a_room_takes_the_room(rooms: Rooms) -> None:
    appointment = _book(rooms, rooms.practice.doctor)
    assert Appointment.objects.get(pk=appointment.pk).resource == rooms.room


def test_slots_disappear_when_the_only_room_is_taken_by_another_provider_s_visit(
    rooms: Rooms,
) -> None:
    # Given Dr. Chen's 09:00 is free as far as her own calendar goes
    assert NINE in _starts(rooms, rooms.practice.doctor)
    # When Dr. Haddad's 09:00 procedure takes the one room
    _book(rooms, rooms.colleague)
    # Then Dr. Chen has no 09:00 procedure slot, only later ones
    starts = _starts(rooms, rooms.practice.doctor)
    assert NINE not in starts
    assert HALF_NINE in starts


def test_a_type_without_a_resource_need_is_unaffected(rooms: Rooms) -> None:
    _book(rooms, rooms.colleague)
    assert NINE in _starts(rooms, rooms.practice.doctor, rooms.practice.visit)
    visit = _book(rooms, rooms.practice.doctor, kind=rooms.practice.visit)
    assert visit.start == NINE and visit.resource is None


def test_booking_when_the_only_room_is_held_is_taken_with_the_next_free_times(
    rooms: Rooms,
) -> None:
    _book(rooms, rooms.colleague)
    with pytest.raises(SlotTaken) as taken:
        _book(rooms, rooms.practice.doctor)
    assert taken.value.alternatives[0].start == HALF_NINE
    assert not Appointment.objects.filter(provider=rooms.practice.doctor).exists()


def test_a_second_room_lets_both_providers_book_the_same_time(rooms: Rooms) -> None:
    second = Resource.objects.create(
        location=rooms.practice.clinic, name="Treatment room", kind=ResourceKind.ROOM
    )
    first = _book(rooms, rooms.colleague)
    other = _book(rooms, rooms.practice.doctor)
    assert {first.resource_id, other.resource_id} == {rooms.room.pk, second.pk}
    third = make_provider(rooms.practice.clinic, "Dr. Ines Park")
    weekly(third, rooms.practice.clinic, 0, datetime.time(9), datetime.time(12))
    assert NINE not in _starts(rooms, third)


def test_a_retired_room_or_a_room_of_another_kind_is_not_used(rooms: Rooms) -> None:
    rooms.room.active = False
    rooms.room.save(update_fields=["active"])
    Resource.objects.create(
        location=rooms.practice.clinic, name="Ultrasound", kind=ResourceKind.EQUIPMENT
    )
    Resource.objects.create(location=rooms.practice.west, name="West room", kind=ResourceKind.ROOM)
    assert _starts(rooms, rooms.practice.doctor) == set()
    with pytest.raises(SlotUnavailable) as refused:
        _book(rooms, rooms.practice.doctor)
    assert not isinstance(refused.value, SlotTaken)


def test_the_room_is_held_for_the_buffer_too(rooms: Rooms) -> None:
    rooms.procedure.buffer_minutes = 15
    rooms.procedure.save(update_fields=["buffer_minutes"])
    _book(rooms, rooms.colleague)
    starts = _starts(rooms, rooms.practice.doctor)
    # Dr. Chen's slots step by 45 minutes from 09:00; the room is free from 09:45.
    assert NINE not in starts and local(MONDAY_BEFORE_DST, 9, 45) in starts


def test_rescheduling_frees_the_room_and_the_new_time_gets_one(rooms: Rooms) -> None:
    held = _book(rooms, rooms.colleague)
    moved = appointment_reschedule(actor=rooms.practice.desk, appointment=held, start=TEN)
    assert moved.resource == rooms.room
    assert Appointment.objects.get(pk=held.pk).status == AppointmentStatus.CANCELLED
    assert NINE in _starts(rooms, rooms.practice.doctor)
    assert TEN not in _starts(rooms, rooms.practice.doctor)
    assert _book(rooms, rooms.practice.doctor).resource == rooms.room


def test_the_appointment_page_names_the_room(rooms: Rooms) -> None:
    appointment = _book(rooms, rooms.practice.doctor)
    desk = force_verified_login(Client(), rooms.practice.desk)
    html = desk.get(f"/schedule/appointments/{appointment.pk}/", secure=True).content.decode()
    assert "<dt>Room</dt><dd>Procedure room</dd>" in html


def test_the_database_refuses_two_bookings_of_one_room_on_postgresql(rooms: Rooms) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the exclusion constraint is PostgreSQL's; SQLite serialises bookings")
    first = _book(rooms, rooms.colleague)
    clash = Appointment(
        patient=rooms.practice.patient,
        provider=rooms.practice.doctor,
        location=rooms.practice.clinic,
        appointment_type=rooms.procedure,
        resource=rooms.room,
        start=first.start + datetime.timedelta(minutes=15),
        end=first.end + datetime.timedelta(minutes=15),
        busy_until=first.end + datetime.timedelta(minutes=15),
        created_at=AT,
    )
    with (
        pytest.raises(IntegrityError, match="appt_no_resource_double_booking"),
        transaction.atomic(),
    ):
        clash.save(force_insert=True)


def test_a_violation_of_the_room_constraint_is_slot_taken_on_postgresql(rooms: Rooms) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the exclusion constraint is PostgreSQL's; SQLite serialises bookings")
    # A hold the service's look-back (24 hours before the searched day) does not see,
    # but the constraint does: it began on Saturday and claims the room until 09:10.
    Appointment.objects.create(
        patient=rooms.practice.patient,
        provider=make_provider(rooms.practice.clinic, "Dr. Long Stay"),
        location=rooms.practice.clinic,
        appointment_type=rooms.procedure,
        resource=rooms.room,
        start=NINE - datetime.timedelta(hours=36),
        end=NINE - datetime.timedelta(hours=35),
        busy_until=NINE + datetime.timedelta(minutes=10),
        created_at=AT,
    )
    with pytest.raises(SlotTaken):
        _book(rooms, rooms.practice.doctor)
    assert not Appointment.objects.filter(provider=rooms.practice.doctor).exists()


# --- many clients, one room -------------------------------------------------------------

CLIENTS = 8
DRIVER = "tests.scheduling.booking_driver"


@pytest.mark.slow
def test_simultaneous_bookings_by_two_providers_of_the_one_room_have_exactly_one_winner(
    scratch_env: dict[str, str], tmp_path: Path
) -> None:
    # Given two free providers and one room, and eight patients, half for each provider
    done = subprocess.run(
        [sys.executable, "-m", DRIVER, "setup-room", str(CLIENTS)],
        env=scratch_env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    plan = json.loads(done.stdout)
    go = tmp_path / "go"
    shared = {k: v for k, v in plan.items() if k not in ("patients", "providers")}
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                DRIVER,
                "book",
                str(go),
                patient,
                json.dumps({**shared, "provider": plan["providers"][n % 2]}),
            ],
            env=scratch_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, patient in enumerate(plan["patients"])
    ]
    # When they all book 09:00 at once
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < CLIENTS:
        assert time.monotonic() < deadline, "the clients did not get ready"
        assert all(c.poll() is None for c in clients), "a client died before the race"
        time.sleep(0.05)
    go.touch()
    results = []
    for client in clients:
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err[-2000:]
        results.append(out.strip())
    # Then one booking holds the room; everyone else is offered other times
    winners = [r for r in results if r.startswith("won ")]
    losers = [r for r in results if r.startswith("taken ")]
    assert len(winners) == 1, results
    assert len(losers) == CLIENTS - 1, results
    assert all(int(r.split()[1]) > 0 for r in losers)
