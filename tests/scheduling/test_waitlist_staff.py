"""Staff add a patient to the waitlist through HTTP: from the patient's page or a
POSTed search, with the type, an optional provider, the dates and the time of day; the
same service as the portal (so the same rules, audit and offers); refusals shown in
the form; roles and scope."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from careloop.core import clock
from careloop.outreach.models import Message
from careloop.scheduling.booking import appointment_book, appointment_cancel
from careloop.scheduling.models import TimeOfDay, WaitlistEntry, WaitlistOffer
from careloop.security.models import AuditEvent, Role
from tests.patients.builders import add_contact, make_patient, make_user
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, Practice, local, make_practice
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)
MONDAY = MONDAY_BEFORE_DST.isoformat()
NEXT_WEEK = (MONDAY_BEFORE_DST + datetime.timedelta(days=7)).isoformat()


@pytest.fixture
def practice() -> Iterator[Practice]:
    with clock.frozen(AT):
        yield make_practice()


def _signed_in(user: Any) -> Client:
    return force_verified_login(Client(), user)


def _add_url(practice: Practice) -> str:
    return f"/schedule/waitlist/add/{practice.patient.pk}/"


def _entry_data(practice: Practice, **changes: str) -> dict[str, str]:
    return {
        "appointment_type": practice.visit.pk,
        "provider": "",
        "earliest": MONDAY,
        "latest": NEXT_WEEK,
        "time_of_day": TimeOfDay.MORNING,
        **changes,
    }


def test_the_front_desk_adds_a_patient_from_the_patient_page(practice: Practice) -> None:
    desk = _signed_in(practice.desk)
    with clock.frozen(AT):
        # Given the patient's page, which links to the waitlist form
        profile = desk.get(f"/patients/{practice.patient.pk}/", secure=True).content.decode()
        assert f'href="{_add_url(practice)}"' in profile
        form = desk.get(_add_url(practice), secure=True)
        # When the front desk asks for an earlier morning follow-up with Dr. Chen
        added = desk.post(
            _add_url(practice),
            _entry_data(practice, provider=str(practice.doctor.pk)),
            secure=True,
        )
        listing = desk.get("/schedule/waitlist/", secure=True).content.decode()

    assert form.status_code == 200
    html = form.content.decode()
    assert 'name="appointment_type"' in html and 'name="time_of_day"' in html
    assert 'name="earliest"' in html and 'name="latest"' in html and "Any provider" in html
    # Then the patient waits, added by staff, and the front desk sees the entry
    entry = WaitlistEntry.objects.get(patient=practice.patient)
    assert added.status_code == 302 and added["Location"] == f"/schedule/waitlist/{entry.pk}/"
    assert entry.provider == practice.doctor and entry.time_of_day == TimeOfDay.MORNING
    assert (entry.earliest, entry.latest) == (
        MONDAY_BEFORE_DST,
        MONDAY_BEFORE_DST + datetime.timedelta(days=7),
    )
    assert entry.channel == "staff" and entry.requested_by == practice.desk
    assert AuditEvent.objects.filter(
        action="waitlist.request", actor_id=str(practice.desk.pk), patient_id=practice.patient.pk
    ).exists()
    assert "Ana Rivera" in listing and "<td>Staff</td>" in listing
    assert 'href="/schedule/waitlist/add/"' in listing


def test_staff_find_the_patient_by_a_search_that_stays_out_of_the_url(
    practice: Practice,
) -> None:
    make_patient("Bea", "Brooks", datetime.date(1981, 1, 1))
    desk = _signed_in(practice.desk)
    with clock.frozen(AT):
        empty = desk.get("/schedule/waitlist/add/", secure=True).content.decode()
        found = desk.post("/schedule/waitlist/add/", {"q": "Rivera"}, secure=True)
        nobody = desk.post("/schedule/waitlist/add/", {"q": "Nobody"}, secure=True)

    assert "Rivera" not in empty and 'method="post"' in empty
    html = found.content.decode()
    assert found.status_code == 200 and f'href="{_add_url(practice)}"' in html
    assert "Rivera, Ana" in html and "Brooks" not in html
    assert "No patient matches that search." in nobody.content.decode()
    searches = AuditEvent.objects.filter(action="patient.search", actor_id=str(practice.desk.pk))
    assert searches.count() == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"latest": "2026-03-01", "earliest": MONDAY}, "The last date is before the first date."),
        ({"earliest": "2026-01-01", "latest": "2026-01-31"}, "The dates have already passed."),
        ({"latest": "2026-12-31"}, "Choose dates at most 180 days apart."),
        ({"earliest": ""}, "This field is required."),
        ({"latest": "next week"}, "Enter a valid date."),
        ({"appointment_type": "no-such-type"}, "Select a valid choice."),
        ({"time_of_day": "night"}, "Select a valid choice."),
        ({"provider": "9d1f3c2e-0000-4000-8000-000000000000"}, "Select a valid choice."),
    ],
)
def test_bad_input_is_explained_in_the_form_and_nothing_is_added(
    practice: Practice, changes: dict[str, str], message: str
) -> None:
    with clock.frozen(AT):
        page = _signed_in(practice.desk).post(
            _add_url(practice), _entry_data(practice, **changes), secure=True
        )

    html = page.content.decode()
    assert page.status_code == 200 and message in html
    assert 'role="alert"' in html and 'data-part="waitlist-add"' in html
    assert not WaitlistEntry.objects.exists()


def test_the_form_shows_what_the_patient_already_waits_for(practice: Practice) -> None:
    desk = _signed_in(practice.desk)
    with clock.frozen(AT):
        desk.post(_add_url(practice), _entry_data(practice), secure=True)
        again = desk.get(_add_url(practice), secure=True).content.decode()

    entry = WaitlistEntry.objects.get()
    assert "Already waiting" in again and f'href="/schedule/waitlist/{entry.pk}/"' in again


def test_a_patient_added_by_staff_is_offered_time_given_back(
    practice: Practice, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    bea = make_patient("Bea", "Waiting", datetime.date(1980, 1, 1))
    add_contact(bea, "email", "bea@example.org", verified=True, can_email=True)
    with clock.frozen(AT):
        _signed_in(practice.desk).post(
            f"/schedule/waitlist/add/{bea.pk}/", _entry_data(practice), secure=True
        )
        booked = appointment_book(
            actor=practice.desk,
            patient=practice.patient,
            appointment_type=practice.visit,
            provider=practice.doctor,
            location=practice.clinic,
            start=NINE,
        )
        with django_capture_on_commit_callbacks(execute=True):
            appointment_cancel(actor=practice.desk, appointment=booked)

    offer = WaitlistOffer.objects.get(entry__patient=bea)
    assert offer.start == NINE
    assert Message.objects.filter(patient=bea, template_id="waitlist-offer").exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_roles_without_appointment_writes_are_refused(practice: Practice, method: str) -> None:
    for role in (Role.MARKETING, Role.ANALYST, Role.AUDITOR):
        client = _signed_in(make_user(role, username=f"waitlist-{role}-{method}"))
        with clock.frozen(AT):
            for url in ("/schedule/waitlist/add/", _add_url(practice)):
                data = _entry_data(practice) if method == "post" else None
                response = getattr(client, method)(url, data, secure=True)
                assert response.status_code == 403, (role, url)
    assert not WaitlistEntry.objects.exists()


def test_a_clinician_cannot_add_a_patient_outside_her_care(practice: Practice) -> None:
    clinician = _signed_in(make_user(Role.CLINICIAN, username="waitlist-clinician"))
    with clock.frozen(AT):
        page = clinician.get(_add_url(practice), secure=True)
        posted = clinician.post(_add_url(practice), _entry_data(practice), secure=True)
        found = clinician.post("/schedule/waitlist/add/", {"q": "Rivera"}, secure=True)

    assert page.status_code == 404 and posted.status_code == 404
    assert found.status_code == 200 and _add_url(practice) not in found.content.decode()
    assert not WaitlistEntry.objects.exists()
