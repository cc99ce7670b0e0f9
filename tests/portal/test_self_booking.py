"""Self-scheduling in the portal: only self-bookable types, free slots, the visit's
requirements, one confirmation by the patient's preferred channel, and a slot taken
meanwhile answered with the next free times instead of an error page."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from careloop.core import clock
from careloop.outreach.models import Message
from careloop.scheduling.booking import appointment_book
from careloop.scheduling.models import Appointment
from careloop.security.models import AuditEvent
from tests.patients.builders import make_patient
from tests.portal.appointments_world import (
    AT,
    MONDAY_BEFORE_DST,
    World,
    local,
    make_world,
    signed_in,
)

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)


@pytest.fixture
def world() -> Iterator[World]:
    with clock.frozen(AT):
        yield make_world()


def _slot(world: World, start: datetime.datetime = NINE, kind: str = "checkup") -> dict[str, str]:
    return {
        "type": kind,
        "provider": str(world.doctor.pk),
        "location": str(world.clinic.pk),
        "start": str(int(start.timestamp())),
        "patient": str(world.ana.pk),
    }


def test_the_booking_page_offers_only_self_bookable_types(world: World) -> None:
    page = signed_in(world.ana_user).get("/portal/book/", secure=True).content.decode()

    assert "Check-up" in page and "New patient visit" in page and "Video visit" in page
    assert "Procedure" not in page
    assert '<label for="id_type">' in page and '<label for="id_date">' in page


def test_a_search_lists_the_free_times_of_the_week(world: World) -> None:
    appointment_book(
        actor=world.desk,
        patient=make_patient("Ben", "Brooks", datetime.date(1971, 5, 6)),
        appointment_type=world.checkup,
        provider=world.doctor,
        location=world.clinic,
        start=NINE,
    )
    query = {"type": "checkup", "provider": "", "location": "", "date": "2026-03-02"}
    page = signed_in(world.ana_user).get(f"/portal/book/?{urlencode(query)}", secure=True)
    text = page.content.decode()

    # 09:00-12:00 in 30-minute slots, less the one Ben holds: 5 (times in Ana's zone).
    assert text.count('class="slot"') == 5
    assert f"start={int(NINE.timestamp())}" not in text
    assert f"start={int(local(MONDAY_BEFORE_DST, 9, 30).timestamp())}" in text


def test_the_confirm_page_shows_the_visit_and_its_requirements(world: World) -> None:
    query = urlencode(_slot(world, kind="new-patient"))
    page = signed_in(world.ana_user).get(f"/portal/book/confirm/?{query}", secure=True)
    text = page.content.decode()

    assert page.status_code == 200
    assert "New patient visit" in text and "Dr. Maya Chen" in text and "12 Grand St" in text
    assert "arrive 15 minutes early" in text
    assert "insurance card" in text
    assert not Appointment.objects.exists()  # a GET books nothing


def test_booking_books_the_slot_and_sends_one_confirmation(world: World) -> None:
    client = signed_in(world.ana_user)

    response = client.post("/portal/book/confirm/", _slot(world), secure=True)

    assert response.status_code == 302 and response["Location"] == "/portal/"
    booked = Appointment.objects.get(patient=world.ana)
    assert (booked.start, booked.source, booked.status) == (NINE, "portal", "booked")
    confirmation = Message.objects.get(patient=world.ana, template_id="appointment-booked")
    assert confirmation.appointment_id == booked.pk
    assert confirmation.channel == "email"  # her first channel with an address
    event = AuditEvent.objects.get(action="appointment.book", resource_id=str(booked.pk))
    assert event.actor_id == str(world.ana_user.pk)
    home = client.get("/portal/", secure=True).content.decode()
    assert "Your appointment is booked" in home and "Check-up" in home

    # The same form sent again: the time is hers now, so it is taken; nothing more.
    again = client.post("/portal/book/confirm/", _slot(world), secure=True)
    assert again.status_code == 200 and "just taken" in again.content.decode()
    assert Appointment.objects.filter(patient=world.ana).count() == 1
    assert Message.objects.filter(template_id="appointment-booked").count() == 1


def test_a_slot_just_taken_shows_the_next_free_times_not_an_error(world: World) -> None:
    client = signed_in(world.ana_user)
    confirm = client.get(f"/portal/book/confirm/?{urlencode(_slot(world))}", secure=True)
    assert confirm.status_code == 200
    appointment_book(  # the front desk books the time while Ana reads the page
        actor=world.desk,
        patient=make_patient("Ben", "Brooks", datetime.date(1971, 5, 6)),
        appointment_type=world.checkup,
        provider=world.doctor,
        location=world.clinic,
        start=NINE,
    )

    response = client.post("/portal/book/confirm/", _slot(world), secure=True)
    text = response.content.decode()

    assert response.status_code == 200
    assert "that time was just taken" in text and "Next free times" in text
    assert f"start={int(local(MONDAY_BEFORE_DST, 9, 30).timestamp())}" in text
    assert not Appointment.objects.filter(patient=world.ana).exists()
    assert not Message.objects.filter(template_id="appointment-booked").exists()


@pytest.mark.parametrize(
    "change",
    [
        {"type": "procedure"},  # staff-only type
        {"type": "no-such-type"},
        {"start": "yesterday"},
        {"start": "-5"},
        {"provider": "not-a-uuid"},
        {"location": "00000000-0000-0000-0000-000000000000"},
    ],
)
def test_bad_booking_input_gets_a_clear_page_and_books_nothing(
    world: World, change: dict[str, str]
) -> None:
    response = signed_in(world.ana_user).post(
        "/portal/book/confirm/", _slot(world) | change, secure=True
    )

    assert response.status_code == 200
    assert "That time could not be found" in response.content.decode()
    assert not Appointment.objects.exists()


def test_a_time_that_is_not_a_slot_is_refused_with_alternatives(world: World) -> None:
    response = signed_in(world.ana_user).post(
        "/portal/book/confirm/", _slot(world, local(MONDAY_BEFORE_DST, 9, 10)), secure=True
    )

    assert response.status_code == 200
    assert "Next free times" in response.content.decode()
    assert not Appointment.objects.exists()


def test_a_search_without_a_type_asks_for_one(world: World) -> None:
    response = signed_in(world.ana_user).get("/portal/book/?type=&date=nonsense", secure=True)

    assert response.status_code == 200
    assert "Please choose a kind of visit" in response.content.decode()


def test_the_booking_pages_speak_spanish(world: World) -> None:
    page = signed_in(world.ana_user).get("/portal/book/?lang=es", secure=True).content.decode()

    assert "Reservar una cita" in page and "Tipo de visita" in page
