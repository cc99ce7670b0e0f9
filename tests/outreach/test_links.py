"""Links in messages: short, expiring, a GET changes nothing, a POST confirms."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client

from careloop.core import clock
from careloop.outreach.links import link_open, links_for, signed_link
from careloop.scheduling.models import Appointment
from tests.outreach.conftest import NOON, reachable_patient
from tests.patients.builders import add_appointment, make_location, make_provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def visit() -> Appointment:
    provider = make_provider(make_location())
    return add_appointment(reachable_patient(), provider, NOON + datetime.timedelta(days=5))


def _path(url: str) -> str:
    return url[url.index("/m/") :]


def test_links_are_short_reused_and_name_nothing(visit: Appointment) -> None:
    url = signed_link("confirm", visit)
    assert len(url) < 45
    assert str(visit.pk) not in url and str(visit.patient_id) not in url
    assert signed_link("confirm", visit) == url  # the same visit, the same link
    assert signed_link("reschedule", visit) != url
    links = links_for(patient=visit.patient, appointment=visit, purpose="appointment")
    assert links["confirm"] == url


def test_confirming_takes_a_post(client: Client, visit: Appointment) -> None:
    path = _path(signed_link("confirm", visit))
    page = client.get(path)
    assert page.status_code == 200
    assert b"Confirm my visit" in page.content
    visit.refresh_from_db()
    assert visit.status == "booked"  # a mail scanner's GET changed nothing
    done = client.post(path)
    assert b"Your visit is confirmed" in done.content
    visit.refresh_from_db()
    assert visit.status == "confirmed"
    assert visit.patient.timeline.filter(summary__contains="confirmed by the patient").exists()


def test_expired_and_unknown_links_change_nothing(client: Client, visit: Appointment) -> None:
    path = _path(signed_link("confirm", visit))
    with clock.frozen(NOON + datetime.timedelta(days=30)):
        expired = client.post(path)
    assert expired.status_code == 410
    assert b"This link has expired" in expired.content
    altered = client.post(path[:-1] + ("x" if path[-1] != "x" else "y"))
    assert altered.status_code == 403
    assert b"This link does not work" in altered.content
    visit.refresh_from_db()
    assert visit.status == "booked"


def test_a_reschedule_link_says_how_to_book(client: Client, visit: Appointment) -> None:
    target = link_open(_path(signed_link("reschedule", visit))[3:])
    assert (target.action, target.appointment_id) == ("reschedule", visit.pk)
    page = client.get(_path(signed_link("reschedule", visit)))
    assert page.status_code == 200
    assert b"Choose a new time" in page.content


def test_a_past_visit_cannot_be_confirmed(client: Client, visit: Any) -> None:
    path = _path(signed_link("confirm", visit))
    with clock.frozen(NOON + datetime.timedelta(days=6)):
        page = client.post(path)
    assert b"can no longer be confirmed" in page.content
