"""Which staff roles may book a type (`AppointmentType.booking_roles`): through the
booking service and the staff pages. A role left out gets a sentence, never a 403 or
an error page, and nothing changes; patients are governed by `self_bookable` alone."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from careloop.core import clock
from careloop.scheduling.booking import (
    OnBehalf,
    RoleMayNotBook,
    appointment_book,
    appointment_reschedule,
)
from careloop.scheduling.models import Appointment, AppointmentStatus, AppointmentType
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import make_user
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, Practice, local, make_practice
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)
TEN = local(MONDAY_BEFORE_DST, 10)
DAY = MONDAY_BEFORE_DST.isoformat()


@dataclass
class World:
    practice: Practice
    counselling: AppointmentType
    coordinator: User


@pytest.fixture
def world() -> Iterator[World]:
    """A counselling visit only care coordinators book; the front desk may not."""
    with clock.frozen(AT):
        practice = make_practice()
        counselling = AppointmentType.objects.create(
            code="counselling",
            name="Care counselling",
            minutes=30,
            booking_roles=[Role.CARE_COORDINATOR],
        )
        yield World(practice, counselling, make_user(Role.CARE_COORDINATOR))


def _book(world: World, actor: User | OnBehalf, kind: AppointmentType | None = None) -> Appointment:
    with clock.frozen(AT):
        return appointment_book(
            actor=actor,
            patient=world.practice.patient,
            appointment_type=kind or world.counselling,
            provider=world.practice.doctor,
            location=world.practice.clinic,
            start=NINE,
        )


# --- the service ------------------------------------------------------------------------


def test_a_role_the_type_leaves_out_is_refused_and_the_refusal_audited(world: World) -> None:
    with pytest.raises(RoleMayNotBook) as refused:
        _book(world, world.practice.desk)
    assert str(refused.value) == (
        "Front desk staff may not book Care counselling visits (booked by: Care coordinator)"
    )
    assert not Appointment.objects.exists()
    denied = AuditEvent.objects.get(action="access.denied", resource_type="AppointmentType")
    assert (denied.outcome, denied.resource_id, denied.patient_id) == (
        "denied",
        "counselling",
        world.practice.patient.pk,
    )


def test_a_role_the_type_names_books_it(world: World) -> None:
    assert _book(world, world.coordinator).status == AppointmentStatus.BOOKED


def test_a_type_with_no_roles_named_is_open_to_every_role_that_books(world: World) -> None:
    assert world.practice.visit.booking_roles == []
    assert _book(world, world.practice.desk, world.practice.visit).start == NINE


def test_the_patient_is_not_held_to_the_staff_roles(world: World) -> None:
    patient = OnBehalf("patient", str(world.practice.patient.pk))
    assert _book(world, patient).status == AppointmentStatus.BOOKED


def test_a_role_left_out_may_not_move_a_visit_of_the_type(world: World) -> None:
    booked = _book(world, world.coordinator)
    with clock.frozen(AT), pytest.raises(RoleMayNotBook):
        appointment_reschedule(actor=world.practice.desk, appointment=booked, start=TEN)
    assert Appointment.objects.get().status == AppointmentStatus.BOOKED


def test_booking_roles_accept_staff_role_codes_only(world: World) -> None:
    world.counselling.booking_roles = [Role.CLINICIAN, Role.FRONT_DESK]
    world.counselling.full_clean()
    for wrong in (["patient"], ["nobody"], "clinician"):
        world.counselling.booking_roles = wrong
        with pytest.raises(ValidationError):
            world.counselling.full_clean()


# --- the staff pages --------------------------------------------------------------------


def _search(world: World) -> dict[str, str]:
    return {
        "appointment_type": world.counselling.pk,
        "location": str(world.practice.clinic.pk),
        "provider": str(world.practice.doctor.pk),
        "start_date": DAY,
        "end_date": DAY,
    }


def test_the_booking_page_says_the_role_may_not_book_the_type(world: World) -> None:
    desk = force_verified_login(Client(), world.practice.desk)
    url = f"/schedule/book/{world.practice.patient.pk}/"
    slot = f"{world.practice.doctor.pk}@{NINE.isoformat()}"
    with clock.frozen(AT):
        listing = desk.get(url, _search(world), secure=True)
        posted = desk.post(url, {**_search(world), "slot": slot}, secure=True)

    assert listing.status_code == 200
    assert "Your role may not book Care counselling visits" in listing.content.decode()
    assert "9:30 AM ·" not in listing.content.decode()
    assert posted.status_code == 200
    assert "Front desk staff may not book Care counselling visits" in posted.content.decode()
    assert not Appointment.objects.exists()


def test_the_booking_page_books_the_type_for_a_role_it_names(world: World) -> None:
    coordinator = force_verified_login(Client(), world.coordinator)
    url = f"/schedule/book/{world.practice.patient.pk}/"
    slot = f"{world.practice.doctor.pk}@{NINE.isoformat()}"
    with clock.frozen(AT):
        listing = coordinator.get(url, _search(world), secure=True).content.decode()
        posted = coordinator.post(url, {**_search(world), "slot": slot}, secure=True)

    assert "9:30 AM" in listing
    assert posted.status_code == 302
    assert Appointment.objects.get().appointment_type == world.counselling


def test_moving_a_visit_the_role_may_not_book_is_explained(world: World) -> None:
    booked = _book(world, world.coordinator)
    desk = force_verified_login(Client(), world.practice.desk)
    url = f"/schedule/appointments/{booked.pk}/reschedule/"
    with clock.frozen(AT):
        dropped = desk.post(
            url,
            {"start": TEN.isoformat(), "provider": str(world.practice.doctor.pk)},
            secure=True,
            headers={"Accept": "application/json"},
        )
        chosen = desk.post(
            url, {"slot": f"{world.practice.doctor.pk}@{TEN.isoformat()}"}, secure=True
        )

    assert dropped.status_code == 409
    assert "may not book Care counselling" in json.loads(dropped.content)["message"]
    assert chosen.status_code == 200
    assert "Not moved: Front desk staff may not book" in chosen.content.decode()
    assert Appointment.objects.get().start == NINE


def test_a_waitlist_booking_by_a_role_left_out_is_explained(world: World) -> None:
    from careloop.scheduling.waitlist import waitlist_request

    with clock.frozen(AT):
        entry = waitlist_request(
            actor=world.coordinator,
            patient=world.practice.patient,
            appointment_type=world.counselling,
            earliest=MONDAY_BEFORE_DST,
            latest=MONDAY_BEFORE_DST + datetime.timedelta(days=1),
        )
        desk = force_verified_login(Client(), world.practice.desk)
        slot = f"{world.practice.doctor.pk}|{world.practice.clinic.pk}|{NINE.isoformat()}"
        response = desk.post(
            f"/schedule/waitlist/{entry.pk}/",
            {"action": "book", "slot": slot},
            secure=True,
            follow=True,
        )

    assert response.status_code == 200
    assert "Front desk staff may not book Care counselling visits" in response.content.decode()
    assert not Appointment.objects.exists()
