"""The staff calendar through HTTP: day, week and provider views in the location's time
zone; status changes, rescheduling (by form and by a drop's JSON) and booking from the
patient's page, all through the booking services; refusals that name the next free
times; roles, scope, unknown ids and bad input."""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.test import Client

from careloop.core import clock
from careloop.scheduling.booking import appointment_book
from careloop.scheduling.models import Appointment, AppointmentStatus, Provider
from careloop.security.models import AuditEvent, Role
from tests.patients.builders import make_patient, make_provider, make_user
from tests.scheduling.practice import (
    AT,
    LOS_ANGELES,
    MONDAY_BEFORE_DST,
    Practice,
    local,
    make_practice,
    weekly,
)
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)
TEN = local(MONDAY_BEFORE_DST, 10)
DAY = MONDAY_BEFORE_DST.isoformat()


@dataclass
class World:
    practice: Practice
    colleague: Provider
    visit: Appointment
    desk: Client


@pytest.fixture
def world() -> Iterator[World]:
    with clock.frozen(AT):
        practice = make_practice()
        colleague = make_provider(practice.clinic, "Dr. Omar Haddad")
        weekly(colleague, practice.clinic, 0, datetime.time(9), datetime.time(12))
        visit = _book(practice, NINE)
        desk = force_verified_login(Client(), practice.desk)
        yield World(practice, colleague, visit, desk)


def _book(
    practice: Practice, start: datetime.datetime, provider: Provider | None = None, **extra: object
) -> Appointment:
    return appointment_book(
        actor=practice.desk,
        patient=extra.get("patient", practice.patient),  # type: ignore[arg-type]
        appointment_type=practice.visit,
        provider=provider or practice.doctor,
        location=practice.clinic,
        start=start,
    )


def _as(role: str, **fields: object) -> Client:
    return force_verified_login(Client(), make_user(role, username=f"cal-{role}", **fields))


def _day_url(world: World, **params: str) -> str:
    query = {"location": str(world.practice.clinic.pk), "date": DAY, **params}
    return "/schedule/?" + "&".join(f"{k}={v}" for k, v in query.items())


def _get(client: Client, url: str) -> tuple[int, str]:
    response = client.get(url, secure=True)
    return response.status_code, response.content.decode()


def _move(
    world: World, appointment: Appointment, start: datetime.datetime, provider: Provider
) -> tuple[int, dict[str, object]]:
    response = world.desk.post(
        f"/schedule/appointments/{appointment.pk}/reschedule/",
        {"start": start.isoformat(), "provider": str(provider.pk)},
        secure=True,
        headers={"Accept": "application/json"},
    )
    return response.status_code, json.loads(response.content)


# --- the views --------------------------------------------------------------------------


def test_day_view_shows_each_provider_with_the_visit_in_the_location_time_zone(
    world: World,
) -> None:
    status, html = _get(world.desk, _day_url(world))

    assert status == 200
    assert "Dr. Maya Chen" in html and "Dr. Omar Haddad" in html
    assert "Rivera, Ana" in html
    assert f'href="/patients/{world.practice.patient.pk}/"' in html
    assert "9:00 AM" in html and "America/New_York" in html
    # Type and status in words, not colour alone; the cell's start carries its offset.
    assert "Follow-up" in html and "Booked" in html
    assert 'data-start="2026-03-02T09:00:00-05:00"' in html
    assert 'draggable="true"' in html
    # The waitlist and the EHR conflicts are a click away from the calendar.
    assert 'href="/schedule/waitlist/"' in html and 'href="/schedule/conflicts/"' in html


def test_a_day_listing_patients_is_audited_as_a_patient_list_without_names(
    world: World,
) -> None:
    _get(world.desk, _day_url(world))

    event = AuditEvent.objects.filter(action="patient.list", resource_type="Appointment").get()
    assert event.actor_id == str(world.practice.desk.pk)
    assert event.resource_id.endswith(":shown=1")
    assert "name" in event.fields
    assert "Rivera" not in event.resource_id


def test_day_view_shows_only_the_chosen_providers(world: World) -> None:
    status, html = _get(world.desk, _day_url(world, provider=str(world.colleague.pk)))

    assert status == 200
    assert "Dr. Omar Haddad" in html
    assert "Rivera, Ana" not in html  # her visit is with Dr. Chen


def test_week_and_provider_views_show_the_provider_s_visits(world: World) -> None:
    doctor = world.practice.doctor.pk
    week_status, week = _get(world.desk, f"/schedule/week/?provider={doctor}&date={DAY}")
    agenda_status, agenda = _get(world.desk, f"/schedule/provider/?provider={doctor}&date={DAY}")

    assert week_status == agenda_status == 200
    assert "Rivera, Ana" in week and "Mon 3/2" in week and "Sun 3/8" in week
    assert "Rivera, Ana" in agenda and "Monday, March 2" in agenda


def test_navigation_moves_by_a_day_or_a_week(world: World) -> None:
    _, day = _get(world.desk, _day_url(world))
    _, week = _get(world.desk, f"/schedule/week/?provider={world.practice.doctor.pk}&date={DAY}")

    assert "date=2026-03-01" in day and "date=2026-03-03" in day
    assert "date=2026-02-27" in day  # today, in the location's zone (the frozen clock)
    assert "date=2026-02-23" in week and "date=2026-03-09" in week


def test_a_west_coast_location_shows_its_own_clock(world: World) -> None:
    west = world.practice.west
    remote = make_provider(west, "Dr. Lena Ortiz")
    weekly(remote, west, 0, datetime.time(9), datetime.time(12))
    with clock.frozen(AT):
        appointment_book(
            actor=world.practice.desk,
            patient=world.practice.patient,
            appointment_type=world.practice.visit,
            provider=remote,
            location=west,
            start=local(MONDAY_BEFORE_DST, 9, zone=LOS_ANGELES),
        )
    status, html = _get(world.desk, f"/schedule/?location={west.pk}&date={DAY}")

    assert status == 200
    assert "America/Los_Angeles" in html
    assert 'data-start="2026-03-02T09:00:00-08:00"' in html
    assert "9:00 AM" in html


def test_cancelled_visits_are_hidden_unless_asked_for(world: World) -> None:
    with clock.frozen(AT):
        world.desk.post(
            f"/schedule/appointments/{world.visit.pk}/status/", {"action": "cancel"}, secure=True
        )
    _, hidden = _get(world.desk, _day_url(world))
    _, shown = _get(world.desk, _day_url(world, cancelled="1"))

    assert "Rivera, Ana" not in hidden
    assert "Rivera, Ana" in shown and "Cancelled" in shown


# --- roles, scope and bad input ---------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MARKETING, Role.ANALYST, Role.AUDITOR])
def test_a_role_without_appointments_is_refused_and_the_refusal_audited(
    world: World, role: str
) -> None:
    client = _as(role)
    pages = [
        _day_url(world),
        f"/schedule/week/?provider={world.practice.doctor.pk}",
        f"/schedule/appointments/{world.visit.pk}/",
        f"/schedule/book/{world.practice.patient.pk}/",
    ]
    for url in pages:
        assert client.get(url, secure=True).status_code == 403, url
    moved = client.post(
        f"/schedule/appointments/{world.visit.pk}/status/", {"action": "cancel"}, secure=True
    )
    assert moved.status_code == 403
    assert AuditEvent.objects.filter(action="access.denied").count() == len(pages) + 1
    world.visit.refresh_from_db()
    assert world.visit.status == AppointmentStatus.BOOKED


def test_the_front_desk_sees_the_schedule_link_and_marketing_does_not(world: World) -> None:
    _, desk_home = _get(world.desk, "/")
    _, marketing_home = _get(_as(Role.MARKETING), "/")

    assert 'href="/schedule/"' in desk_home
    assert 'href="/schedule/"' not in marketing_home


def test_a_clinician_sees_others_patients_only_as_held_time(world: World) -> None:
    other = make_provider(world.practice.west, "Dr. Far Away")
    client = _as(Role.CLINICIAN, provider=other)

    status, html = _get(client, _day_url(world))
    assert status == 200
    assert "Rivera" not in html
    assert "not on your team" in html
    assert client.get(f"/schedule/appointments/{world.visit.pk}/", secure=True).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/schedule/?location={missing}",
        "/schedule/?location=not-a-uuid",
        "/schedule/?provider={missing}",
        "/schedule/week/?provider={missing}",
        "/schedule/provider/?provider=nope",
        "/schedule/appointments/{missing}/",
        "/schedule/book/{missing}/",
    ],
)
def test_unknown_ids_are_not_found(world: World, url: str) -> None:
    status, _ = _get(world.desk, url.format(missing=uuid.uuid4()))
    assert status == 404


def test_rescheduling_with_an_unknown_provider_is_not_found(world: World) -> None:
    url = f"/schedule/appointments/{world.visit.pk}/?provider={uuid.uuid4()}"
    assert world.desk.get(url, secure=True).status_code == 404


def test_a_bad_date_says_so_and_shows_today(world: World) -> None:
    with clock.frozen(AT):
        status, html = _get(world.desk, _day_url(world, date="2026-02-30"))

    assert status == 200
    assert "That is not a date" in html
    assert "Friday, February 27, 2026" in html


# --- status changes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("check_in", AppointmentStatus.CHECKED_IN),
        ("no_show", AppointmentStatus.NO_SHOW),
        ("cancel", AppointmentStatus.CANCELLED),
    ],
)
def test_the_front_desk_changes_a_status_through_the_services(
    world: World, action: str, status: str
) -> None:
    with clock.frozen(AT):
        response = world.desk.post(
            f"/schedule/appointments/{world.visit.pk}/status/", {"action": action}, secure=True
        )

    assert response.status_code == 302
    world.visit.refresh_from_db()
    assert world.visit.status == status
    audit = f"appointment.{action}"
    assert AuditEvent.objects.filter(action=audit, resource_id=str(world.visit.pk)).exists()


def test_check_in_then_complete(world: World) -> None:
    url = f"/schedule/appointments/{world.visit.pk}/status/"
    with clock.frozen(AT):
        world.desk.post(url, {"action": "check_in"}, secure=True)
        world.desk.post(url, {"action": "complete"}, secure=True)
    world.visit.refresh_from_db()
    assert world.visit.status == AppointmentStatus.FULFILLED


def test_a_change_the_status_does_not_allow_is_explained_not_an_error(world: World) -> None:
    url = f"/schedule/appointments/{world.visit.pk}/status/"
    with clock.frozen(AT):
        world.desk.post(url, {"action": "cancel"}, secure=True)
        response = world.desk.post(url, {"action": "no_show"}, secure=True, follow=True)
        unknown = world.desk.post(url, {"action": "explode"}, secure=True, follow=True)

    assert response.status_code == 200
    assert "cannot no show an appointment that is cancelled" in response.content.decode()
    assert "Choose a change" in unknown.content.decode()
    world.visit.refresh_from_db()
    assert world.visit.status == AppointmentStatus.CANCELLED


# --- rescheduling -----------------------------------------------------------------------


def test_the_reschedule_form_offers_free_times_and_moves_the_visit(world: World) -> None:
    page = f"/schedule/appointments/{world.visit.pk}/"
    with clock.frozen(AT):
        status, html = _get(world.desk, page)
        slot = f"{world.practice.doctor.pk}@{TEN.astimezone(datetime.UTC).isoformat()}"
        response = world.desk.post(f"{page}reschedule/", {"slot": slot}, secure=True)

    assert status == 200 and "Move to this time" in html
    assert 'value="' + slot.replace("+00:00", "+00:00") in html
    assert response.status_code == 302
    moved = Appointment.objects.get(rescheduled_from=world.visit)
    assert moved.start == TEN
    assert response["Location"] == f"/schedule/appointments/{moved.pk}/"


def test_a_drop_moves_the_visit_to_another_provider_and_returns_its_block(world: World) -> None:
    with clock.frozen(AT):
        status, answer = _move(world, world.visit, TEN, world.colleague)

    assert status == 200 and answer["ok"] is True
    moved = Appointment.objects.get(pk=answer["id"])
    assert (moved.start, moved.provider) == (TEN, world.colleague)
    assert "10:00 AM" in str(answer["block"]) and "Rivera, Ana" in str(answer["block"])
    assert "Dr. Omar Haddad" in str(answer["message"])
    world.visit.refresh_from_db()
    assert world.visit.status == AppointmentStatus.CANCELLED


def test_a_drop_on_a_time_just_taken_is_refused_with_the_next_free_times(world: World) -> None:
    with clock.frozen(AT):
        rival = make_patient("Ben", "Okoye", datetime.date(1980, 1, 1))
        _book(world.practice, TEN, patient=rival)
        status, answer = _move(world, world.visit, TEN, world.practice.doctor)

    assert status == 409 and answer["ok"] is False
    assert "just taken" in str(answer["message"])
    alternatives = answer["alternatives"]
    assert isinstance(alternatives, list) and alternatives
    assert "10:30 AM" in alternatives[0]
    world.visit.refresh_from_db()
    assert world.visit.status == AppointmentStatus.BOOKED
    assert not Appointment.objects.filter(rescheduled_from=world.visit).exists()


def test_a_drop_outside_the_hours_is_refused_and_the_form_shows_alternatives(
    world: World,
) -> None:
    evening = local(MONDAY_BEFORE_DST, 18)
    with clock.frozen(AT):
        status, answer = _move(world, world.visit, evening, world.practice.doctor)
        page = world.desk.post(
            f"/schedule/appointments/{world.visit.pk}/reschedule/",
            {"start": evening.isoformat()},
            secure=True,
        )

    assert status == 409 and "not an open slot" in str(answer["message"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "not an open slot" in html and "The next free times are below" in html


@pytest.mark.parametrize("start", ["", "tomorrow", "2026-13-01T09:00"])
def test_a_drop_without_a_time_is_bad_input_not_an_error(world: World, start: str) -> None:
    url = f"/schedule/appointments/{world.visit.pk}/reschedule/"
    json_answer = world.desk.post(
        url, {"start": start}, secure=True, headers={"Accept": "application/json"}
    )
    page = world.desk.post(url, {"start": start}, secure=True)

    assert json_answer.status_code == 400
    assert page.status_code == 200 and "Choose a new time" in page.content.decode()


def test_a_drop_naming_an_unknown_provider_is_not_found(world: World) -> None:
    response = world.desk.post(
        f"/schedule/appointments/{world.visit.pk}/reschedule/",
        {"start": TEN.isoformat(), "provider": str(uuid.uuid4())},
        secure=True,
    )
    assert response.status_code == 404


# --- booking from the patient's page ----------------------------------------------------


def _search(world: World) -> dict[str, str]:
    return {
        "appointment_type": world.practice.visit.pk,
        "location": str(world.practice.clinic.pk),
        "provider": str(world.practice.doctor.pk),
        "start_date": DAY,
        "end_date": DAY,
    }


def test_the_patient_page_links_to_booking(world: World) -> None:
    _, html = _get(world.desk, f"/patients/{world.practice.patient.pk}/")
    assert f'href="/schedule/book/{world.practice.patient.pk}/"' in html


def test_booking_lists_free_times_and_books_one(world: World) -> None:
    url = f"/schedule/book/{world.practice.patient.pk}/"
    search = _search(world)
    with clock.frozen(AT):
        listing = world.desk.get(url, search, secure=True).content.decode()
        slot = f"{world.practice.doctor.pk}@{TEN.isoformat()}"
        response = world.desk.post(url, {**search, "slot": slot}, secure=True)

    assert "9:30 AM" in listing and "10:00 AM" in listing
    assert "9:00 AM ·" not in listing  # held by her first visit
    assert response.status_code == 302
    booked = Appointment.objects.get(start=TEN)
    assert booked.patient == world.practice.patient
    assert response["Location"] == f"/schedule/appointments/{booked.pk}/"


def test_booking_a_time_just_taken_shows_the_next_free_times(world: World) -> None:
    url = f"/schedule/book/{world.practice.patient.pk}/"
    slot = f"{world.practice.doctor.pk}@{NINE.isoformat()}"
    with clock.frozen(AT):
        response = world.desk.post(url, {**_search(world), "slot": slot}, secure=True)

    html = response.content.decode()
    assert response.status_code == 200
    assert "just taken" in html and "9:30 AM" in html
    assert Appointment.objects.filter(start=NINE).count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"slot": "nonsense"},
        {"start_date": "2026-03-09", "end_date": "2026-03-01"},
    ],
)
def test_booking_bad_input_is_explained(world: World, data: dict[str, str]) -> None:
    url = f"/schedule/book/{world.practice.patient.pk}/"
    with clock.frozen(AT):
        response = world.desk.post(url, {**_search(world), **data}, secure=True)
        empty = world.desk.post(url, {}, secure=True)

    assert response.status_code == 200 and empty.status_code == 200
    html = response.content.decode()
    assert "Choose one of the free times" in html or "Check the search fields" in html
    assert Appointment.objects.count() == 1
