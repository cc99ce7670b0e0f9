"""The staff calendar in a real browser: the front desk drags a visit to another time
and provider, sees it there and in the database; a drop on a time someone holds is
refused, the block stays, and the message names the next free times.

Every page is checked for console errors and Content-Security-Policy violations (the
calendar's script is a file with the page's nonce, no inline code).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from careloop.scheduling.booking import appointment_book
from careloop.scheduling.models import Appointment, AppointmentStatus, Location, Provider
from careloop.security.models import Role
from tests.browser.test_patient_profile import Problems, _open_page, _sign_in
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.patients.builders import make_patient, make_provider, make_user
from tests.scheduling.practice import NEW_YORK, make_practice, weekly
from tests.security.personas import totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass
class Calendar:
    key: bytes
    clinic: Location
    doctor: Provider
    colleague: Provider
    visit: Appointment
    monday: datetime.date


def _at(day: datetime.date, hour: int, minute: int = 0, zone: ZoneInfo = NEW_YORK) -> str:
    return datetime.datetime.combine(day, datetime.time(hour, minute), zone).isoformat()


@pytest.fixture
def calendar(live_server: Any) -> Calendar:
    """Built before the browser starts (the ORM refuses to run inside Playwright's loop).
    Real time: next Monday, so the slots are inside the booking horizon."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    practice = make_practice()
    desk = make_user(Role.FRONT_DESK, username="frontdesk", first_name="Dana", last_name="Ito")
    colleague = make_provider(practice.clinic, "Dr. Omar Haddad")
    today = datetime.datetime.now(tz=NEW_YORK).date()
    monday = today + datetime.timedelta(days=7 - today.weekday())
    weekly(colleague, practice.clinic, 0, datetime.time(9), datetime.time(12), since=today)

    def book(patient: Any, hour: int, minute: int) -> Appointment:
        return appointment_book(
            actor=desk,
            patient=patient,
            appointment_type=practice.visit,
            provider=practice.doctor,
            location=practice.clinic,
            start=datetime.datetime.combine(monday, datetime.time(hour, minute), NEW_YORK),
        )

    visit = book(practice.patient, 9, 0)
    book(make_patient("Ben", "Okoye", datetime.date(1980, 1, 1)), 9, 30)
    return Calendar(
        key=bytes(totp_device(desk).bin_key),
        clinic=practice.clinic,
        doctor=practice.doctor,
        colleague=colleague,
        visit=visit,
        monday=monday,
    )


@pytest.fixture
def browser(settings: Any, calendar: Calendar) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    # The live server speaks plain HTTP; Secure cookies would never come back over it.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _cell(page: Any, start: str, provider: Provider) -> Any:
    return page.locator(f'td[data-start="{start}"][data-provider="{provider.pk}"]')


def test_front_desk_drags_a_visit_to_another_time_and_provider(
    live_server: Any, browser: Any, calendar: Calendar, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    # The test reads the database between browser steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = live_server.url
    problems = Problems()
    page = _open_page(browser, problems)
    _sign_in(page, base, "frontdesk", calendar.key)

    # 1. From the main navigation to the Monday at the clinic: her visit at 9:00.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedule").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Schedule")
    page.goto(f"{base}/schedule/?location={calendar.clinic.pk}&date={calendar.monday}")
    ana = page.locator(".cal-block", has_text="Rivera, Ana")
    nine = _cell(page, _at(calendar.monday, 9), calendar.doctor)
    expect(nine.locator(".cal-block")).to_contain_text("Rivera, Ana")
    expect(nine.locator(".cal-block")).to_contain_text("Follow-up · Booked")
    _shot(page, "calendar-01-day")

    # 2. Drag it to 10:30 with Dr. Haddad: moved on the page and in the database.
    target = _cell(page, _at(calendar.monday, 10, 30), calendar.colleague)
    ana.drag_to(target)
    expect(page.locator("#calendar-status")).to_contain_text("Moved to")
    expect(target.locator(".cal-block")).to_contain_text("Rivera, Ana")
    expect(target.locator(".cal-block")).to_contain_text("10:30 AM")
    expect(nine.locator(".cal-block")).to_have_count(0)
    moved = Appointment.objects.get(rescheduled_from=calendar.visit)
    assert moved.provider == calendar.colleague
    assert moved.start.astimezone(NEW_YORK).time() == datetime.time(10, 30)
    calendar.visit.refresh_from_db()
    assert calendar.visit.status == AppointmentStatus.CANCELLED
    _shot(page, "calendar-02-moved")

    # 3. Drag it onto Dr. Chen's 9:30, which Ben holds: refused, the block stays, and
    # the message says why and offers the next free times.
    taken = _cell(page, _at(calendar.monday, 9, 30), calendar.doctor)
    page.locator(".cal-block", has_text="Rivera, Ana").drag_to(taken)
    status = page.locator("#calendar-status")
    expect(status).to_contain_text("just taken")
    expect(status).to_contain_text("Next free times")
    expect(target.locator(".cal-block")).to_contain_text("Rivera, Ana")
    expect(taken.locator(".cal-block")).to_have_count(1)
    assert Appointment.objects.get(rescheduled_from=calendar.visit).pk == moved.pk
    moved.refresh_from_db()
    assert moved.status == AppointmentStatus.BOOKED
    _shot(page, "calendar-03-refused")

    # 4. After a reload the page still shows it where it went.
    page.reload()
    expect(target.locator(".cal-block")).to_contain_text("Rivera, Ana")

    # 5. Without dragging: her appointment's page checks her in.
    target.get_by_role("link", name="Manage").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Follow-up")
    _shot(page, "calendar-04-appointment")
    page.get_by_role("button", name="Check in").click()
    expect(page.get_by_role("status")).to_contain_text("Checked in.")
    moved.refresh_from_db()
    assert moved.status == AppointmentStatus.CHECKED_IN

    # 6. Booking from the patient's page: find free times, book the first.
    page.get_by_role("link", name="Rivera, Ana").first.click()
    page.get_by_role("link", name="Book", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Book an appointment")
    page.get_by_label("Provider").select_option(label="Dr. Maya Chen")
    page.get_by_label("From").fill(calendar.monday.isoformat())
    page.get_by_label("To").fill(calendar.monday.isoformat())
    page.get_by_role("button", name="Find free times").click()
    first = page.get_by_role("radio").first
    expect(first).to_be_visible()
    _shot(page, "calendar-05-book")
    first.check()
    page.get_by_role("button", name="Book", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Booked Follow-up")
    assert Appointment.objects.filter(patient=calendar.visit.patient, status="booked").count() == 1

    # The refusal's 409 is the one expected failed request (and its console line).
    assert problems.csp_violations == []
    assert [e for e in problems.console_errors if "409" not in e] == []
    assert [r for r in problems.failed_requests if not r.startswith("409 ")] == []
