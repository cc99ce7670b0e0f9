"""A form a visit's type requires is asked for when the visit is booked (by staff, in the
portal, by a waitlist claim, by a reschedule: all through careloop.scheduling.booking),
and the portal's home lists it under "To do" with the visit's day and a link to it."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from careloop.core import clock
from careloop.intake.models import FormAssignment, Questionnaire
from careloop.scheduling.booking import appointment_book, appointment_reschedule
from careloop.scheduling.models import Appointment
from tests.intake.builders import form_url, make_questionnaire
from tests.portal.appointments_world import (
    AT,
    MONDAY_BEFORE_DST,
    World,
    local,
    make_world,
    signed_in,
    visit,
)

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)
TEN = local(MONDAY_BEFORE_DST, 10)
Capture = Callable[..., Any]
BEFORE_MONDAY = "Fill in New patient intake before your visit on March 2, 2026"


@pytest.fixture
def world() -> Iterator[World]:
    with clock.frozen(AT):
        yield make_world()


def _intake_for_checkups() -> Questionnaire:
    return make_questionnaire(required_for_types=["checkup"])


def _home(world: World, query: str = "") -> str:
    with clock.frozen(AT):
        page = signed_in(world.ana_user).get(f"/portal/{query}", secure=True)
    assert page.status_code == 200
    return page.content.decode()


def _task(assignment: FormAssignment, words: str) -> str:
    return f'<li class="item task task-form"><a href="{form_url(assignment)}">{words}</a></li>'


def test_a_visit_booked_by_the_front_desk_puts_its_form_on_the_home_to_do_list(
    world: World, django_capture_on_commit_callbacks: Capture
) -> None:
    # Given a form required before check-ups
    _intake_for_checkups()
    desk = signed_in(world.desk)
    search = {
        "appointment_type": "checkup",
        "location": str(world.clinic.pk),
        "provider": str(world.doctor.pk),
        "start_date": MONDAY_BEFORE_DST.isoformat(),
        "end_date": MONDAY_BEFORE_DST.isoformat(),
    }
    # When the front desk books Ana a check-up from her page
    with clock.frozen(AT), django_capture_on_commit_callbacks(execute=True):
        booked = desk.post(
            f"/schedule/book/{world.ana.pk}/",
            {**search, "slot": f"{world.doctor.pk}@{TEN.isoformat()}"},
            secure=True,
        )
    assert booked.status_code == 302
    visit_row = Appointment.objects.get(patient=world.ana)
    # Then the form is asked for at once, for that visit, due its day...
    assignment = FormAssignment.objects.get(patient=world.ana)
    assert assignment.appointment_id == visit_row.pk and assignment.due == MONDAY_BEFORE_DST
    # ...and her home page lists it with the visit's day, linking to the form
    html = _home(world)
    assert _task(assignment, BEFORE_MONDAY) in html


def test_a_visit_booked_in_the_portal_asks_for_its_form_in_the_patients_language(
    world: World, django_capture_on_commit_callbacks: Capture
) -> None:
    _intake_for_checkups()
    slot = {
        "type": "checkup",
        "provider": str(world.doctor.pk),
        "location": str(world.clinic.pk),
        "start": str(int(NINE.timestamp())),
        "patient": str(world.ana.pk),
    }
    with clock.frozen(AT), django_capture_on_commit_callbacks(execute=True):
        response = signed_in(world.ana_user).post("/portal/book/confirm/", slot, secure=True)
    assert response.status_code == 302

    assignment = FormAssignment.objects.get(patient=world.ana)
    html = _home(world, "?lang=es")
    assert (
        _task(
            assignment,
            "Llene el formulario «New patient intake» antes de su visita del 2 de marzo de 2026",
        )
        in html
    )


def test_a_visit_booked_before_the_form_was_required_gets_it_when_home_opens(
    world: World,
) -> None:
    # A visit the EHR sent (no booking here), then the form made required
    with clock.frozen(AT):
        upcoming = visit(world, world.ana, NINE)
    _intake_for_checkups()
    assert not FormAssignment.objects.exists()

    html = _home(world)

    assignment = FormAssignment.objects.get(patient=world.ana)
    assert assignment.appointment_id == upcoming.pk
    assert _task(assignment, BEFORE_MONDAY) in html
    assert "Due by" not in html  # the visit's day says it once


def test_a_rescheduled_visit_keeps_one_form_and_its_saved_answers(
    world: World, django_capture_on_commit_callbacks: Capture
) -> None:
    _intake_for_checkups()
    with clock.frozen(AT), django_capture_on_commit_callbacks(execute=True):
        first = appointment_book(
            actor=world.desk,
            patient=world.ana,
            appointment_type=world.checkup,
            provider=world.doctor,
            location=world.clinic,
            start=NINE,
        )
    assignment = FormAssignment.objects.get(patient=world.ana)
    with clock.frozen(AT):
        signed_in(world.ana_user).post(
            form_url(assignment), {"action": "save", "q-smoker": "false"}, secure=True
        )
    next_monday = local(MONDAY_BEFORE_DST + datetime.timedelta(days=7), 10)

    with clock.frozen(AT), django_capture_on_commit_callbacks(execute=True):
        moved = appointment_reschedule(actor=world.desk, appointment=first, start=next_monday)

    assignment.refresh_from_db()
    assert FormAssignment.objects.count() == 1
    assert assignment.appointment_id == moved.pk and assignment.due == next_monday.date()
    assert assignment.status == "in_progress"
    html = _home(world)
    assert "before your visit on March 9, 2026" in html and "March 2, 2026" not in html


def test_a_visit_of_a_type_that_needs_no_form_asks_for_none(
    world: World, django_capture_on_commit_callbacks: Capture
) -> None:
    make_questionnaire(required_for_types=["new-patient"])
    with clock.frozen(AT), django_capture_on_commit_callbacks(execute=True):
        appointment_book(
            actor=world.desk,
            patient=world.ana,
            appointment_type=world.checkup,
            provider=world.doctor,
            location=world.clinic,
            start=NINE,
        )

    html = _home(world)

    assert not FormAssignment.objects.exists()
    assert "task-form" not in html
