"""The home page's appointments and what a patient does with them: confirm, reschedule,
cancel, add to calendar, check in on the day, join a video visit; care reminders and
tasks. Another patient's appointment is a 404; a refusal is a page that says why."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from careloop.caregaps.models import GapStatus, MeasureRun, PatientMeasureResult
from careloop.consent.documents import consent_document_publish
from careloop.consent.models import ConsentKind
from careloop.core import clock
from careloop.outreach.models import Message
from careloop.patients.models import TimelineEvent
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.models import AuditEvent
from tests.patients.builders import add_coverage, make_patient
from tests.portal.appointments_world import (
    AT,
    MONDAY_BEFORE_DST,
    World,
    local,
    make_world,
    portal_user,
    signed_in,
    visit,
)

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)
ACTIONS = ("confirm", "cancel", "reschedule", "check-in", "calendar.ics", "join")


@pytest.fixture
def world() -> Iterator[World]:
    with clock.frozen(AT):
        yield make_world()


def _url(appointment: Appointment, action: str) -> str:
    suffix = action if action.endswith(".ics") else f"{action}/"
    return f"/portal/appointments/{appointment.pk}/{suffix}"


def test_home_offers_each_action_on_an_upcoming_visit(world: World) -> None:
    appointment = visit(world, world.ana, NINE)

    page = signed_in(world.ana_user).get("/portal/", secure=True).content.decode()

    for action in ("confirm", "cancel", "reschedule", "calendar.ics"):
        assert _url(appointment, action) in page
    assert ">Confirm<" in page and ">Add to calendar<" in page
    assert "check-in" not in page  # not the visit's day yet
    assert page.count('class="card"') == 1


def test_confirming_marks_the_visit_confirmed_like_a_y_reply(world: World) -> None:
    appointment = visit(world, world.ana, NINE)
    client = signed_in(world.ana_user)

    response = client.post(_url(appointment, "confirm"), secure=True)

    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CONFIRMED
    assert TimelineEvent.objects.filter(
        ref_id=str(appointment.pk), summary__contains="confirmed by the patient"
    ).exists()
    event = AuditEvent.objects.get(action="appointment.confirm", resource_id=str(appointment.pk))
    assert event.actor_id == str(world.ana_user.pk)
    home = client.get("/portal/", secure=True).content.decode()
    assert "your appointment is confirmed" in home
    assert _url(appointment, "confirm") not in home


def test_another_patients_appointment_is_not_found(world: World) -> None:
    ben = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    portal_user(ben, "ben-portal")
    theirs = visit(world, ben, NINE)
    client = signed_in(world.ana_user)

    for action in ACTIONS:
        method = client.post if action == "confirm" else client.get
        assert method(_url(theirs, action), secure=True).status_code == 404, action
    assert client.post(_url(theirs, "cancel"), secure=True).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == AppointmentStatus.BOOKED


def test_cancelling_frees_the_time(world: World) -> None:
    appointment = visit(world, world.ana, NINE)
    client = signed_in(world.ana_user)

    ask = client.get(_url(appointment, "cancel"), secure=True)
    assert "Yes, cancel this appointment" in ask.content.decode()
    response = client.post(_url(appointment, "cancel"), secure=True)

    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert AuditEvent.objects.filter(action="appointment.cancel").count() == 1


def test_cancelling_a_completed_visit_says_why_and_changes_nothing(world: World) -> None:
    done = visit(world, world.ana, AT - datetime.timedelta(days=2), status="fulfilled")
    client = signed_in(world.ana_user)

    response = client.post(_url(done, "cancel"), secure=True)

    assert response.status_code == 200
    assert "already taken place, so it cannot be changed or cancelled" in (
        response.content.decode()
    )
    done.refresh_from_db()
    assert done.status == AppointmentStatus.FULFILLED


def test_changes_online_close_at_the_types_lead_time(world: World) -> None:
    world.checkup.lead_minutes = 4 * 24 * 60
    world.checkup.save(update_fields=["lead_minutes"])
    appointment = visit(world, world.ana, NINE)  # Monday 09:00: under 4 days from Friday noon
    client = signed_in(world.ana_user)

    assert _url(appointment, "cancel") not in client.get("/portal/", secure=True).content.decode()
    response = client.post(_url(appointment, "cancel"), secure=True)

    assert "too close to the visit to change it online" in response.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED


def test_rescheduling_moves_the_visit_and_confirms_the_new_time(world: World) -> None:
    appointment = visit(world, world.ana, NINE)
    client = signed_in(world.ana_user)
    ten = local(MONDAY_BEFORE_DST, 10)

    page = client.get(_url(appointment, "reschedule"), secure=True).content.decode()
    assert f'value="{int(ten.timestamp())}"' in page
    response = client.post(
        _url(appointment, "reschedule"), {"start": str(int(ten.timestamp()))}, secure=True
    )

    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    moved = Appointment.objects.get(rescheduled_from=appointment)
    assert moved.start == ten and moved.patient_id == world.ana.pk
    assert Message.objects.filter(template_id="appointment-booked", appointment=moved).count() == 1


def test_rescheduling_to_a_taken_time_offers_the_next_free_ones(world: World) -> None:
    appointment = visit(world, world.ana, NINE)
    ben = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    ten = local(MONDAY_BEFORE_DST, 10)
    visit(world, ben, ten)

    response = signed_in(world.ana_user).post(
        _url(appointment, "reschedule"), {"start": str(int(ten.timestamp()))}, secure=True
    )
    text = response.content.decode()

    assert response.status_code == 200 and "just taken" in text
    assert f'value="{int(local(MONDAY_BEFORE_DST, 10, 30).timestamp())}"' in text
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED


def test_rescheduling_without_a_time_asks_for_one(world: World) -> None:
    appointment = visit(world, world.ana, NINE)
    response = signed_in(world.ana_user).post(
        _url(appointment, "reschedule"), {"start": "soon"}, secure=True
    )
    assert response.status_code == 200 and "Please choose a new time" in response.content.decode()


def test_add_to_calendar_downloads_an_ics_file(world: World) -> None:
    appointment = visit(world, world.ana, NINE)

    response = signed_in(world.ana_user).get(_url(appointment, "calendar.ics"), secure=True)
    body = response.content.decode()

    assert response["Content-Type"].startswith("text/calendar")
    assert "attachment" in response["Content-Disposition"]
    assert "METHOD:PUBLISH" in body and "ATTENDEE" not in body
    assert f"UID:appointment-{appointment.pk}@" in body
    assert "DTSTART:20260302T140000Z" in body
    assert body.endswith("END:VCALENDAR\r\n")


def test_check_in_opens_on_the_visit_day_only(world: World) -> None:
    appointment = visit(world, world.ana, NINE)
    client = signed_in(world.ana_user)

    early = client.post(
        _url(appointment, "check-in"),
        {"demographics": "correct", "insurance": "correct"},
        secure=True,
    )
    assert early.status_code == 200 and "Online check-in opens" in early.content.decode()
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED


def test_checking_in_on_the_day_confirms_the_details_on_file(world: World) -> None:
    add_coverage(world.ana, payer_category="commercial", payer_name="Acme Health")
    appointment = visit(world, world.ana, NINE)
    with clock.frozen(NINE - datetime.timedelta(minutes=30)):
        client = signed_in(world.ana_user)
        home = client.get("/portal/", secure=True).content.decode()
        assert _url(appointment, "check-in") in home
        page = client.get(_url(appointment, "check-in"), secure=True).content.decode()
        assert "Ana Alvarez" in page and "5 Elm St" in page and "+1 212 555 0142" in page
        assert "Acme Health" in page
        assert '<label for="id_demographics_correct">' in page

        missing = client.post(_url(appointment, "check-in"), {"demographics": "x"}, secure=True)
        assert "Please answer both questions" in missing.content.decode()
        response = client.post(
            _url(appointment, "check-in"),
            {"demographics": "update", "insurance": "correct"},
            secure=True,
        )

    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CHECKED_IN
    note = TimelineEvent.objects.get(ref_id=str(appointment.pk), summary__contains="needs updating")
    assert note.summary.endswith("demographics")
    assert AuditEvent.objects.filter(action="appointment.check_in").count() == 1


def test_a_video_visit_says_when_it_can_be_joined(world: World) -> None:
    appointment = visit(world, world.ana, NINE, kind=world.video)
    client = signed_in(world.ana_user)

    assert _url(appointment, "join") in client.get("/portal/", secure=True).content.decode()
    page = client.get(_url(appointment, "join"), secure=True)

    assert page.status_code == 200
    assert "15 minutes before" in page.content.decode()


def test_an_in_person_visit_has_no_join_page(world: World) -> None:
    appointment = visit(world, world.ana, NINE)
    assert signed_in(world.ana_user).get(_url(appointment, "join"), secure=True).status_code == 404


def _gap(world: World, measure: str, status: str, due: datetime.date | None) -> None:
    run = MeasureRun.objects.create(
        measure=measure,
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 12, 31),
        as_of=datetime.date(2026, 2, 27),
        started_at=AT,
        finished_at=AT,
    )
    PatientMeasureResult.objects.create(
        run=run, patient=world.ana, group=1, status=status, due_date=due
    )


def test_care_reminders_name_what_the_patient_is_due_for(world: World) -> None:
    _gap(world, "CMS130", GapStatus.OVERDUE, datetime.date(2025, 12, 1))
    _gap(world, "FLU", GapStatus.DUE_SOON, datetime.date(2026, 3, 20))
    _gap(world, "CMS125", GapStatus.MET, datetime.date(2027, 1, 1))
    client = signed_in(world.ana_user)

    page = client.get("/portal/", secure=True).content.decode()
    spanish = client.get("/portal/?lang=es", secure=True).content.decode()

    assert "You are due for colorectal cancer screening." in page
    assert "You are due for a flu shot." in page
    assert page.index("colorectal") < page.index("flu shot")  # overdue first
    assert "mammogram" not in page
    assert "la detección del cáncer colorrectal" in spanish
    assert AuditEvent.objects.filter(resource_id="care_reminders").exists()


def test_tasks_list_consents_to_sign_and_the_insurance_card(world: World) -> None:
    consent_document_publish(
        actor=None,
        kind=ConsentKind.NPP_ACK,
        version="2026-01",
        title="Notice of Privacy Practices",
        body="How we use your information.",
        requires_acknowledgement=True,
    )

    page = signed_in(world.ana_user).get("/portal/", secure=True).content.decode()

    assert "Sign: Notice of Privacy Practices" in page
    assert "Upload your insurance card" in page


def test_a_patient_with_insurance_on_file_is_not_asked_for_the_card(world: World) -> None:
    add_coverage(world.ana, payer_category="commercial", payer_name="Acme Health")
    page = signed_in(world.ana_user).get("/portal/", secure=True).content.decode()
    assert "Bring your insurance card" not in page


def test_the_home_page_speaks_spanish(world: World) -> None:
    visit(world, world.ana, NINE)
    page = signed_in(world.ana_user).get("/portal/?lang=es", secure=True).content.decode()
    assert "Confirmar" in page and "Añadir al calendario" in page and "Reprogramar" in page
