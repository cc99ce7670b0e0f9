"""Self-booking in a real browser: a patient signs in to the portal, books a
self-bookable slot, sees it on the home page and downloads it as an .ics file.

Drives Debian's Chromium through Playwright, with no host but the live server
reachable; console errors and CSP violations fail the test.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from careloop.core import clock
from careloop.outreach.templates import templates_install_builtin
from careloop.portal.models import PortalAccount
from careloop.scheduling.models import Appointment, AppointmentType, Location
from careloop.security.models import Role
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing
from tests.patients.builders import PASSWORD, add_contact, make_patient, make_provider, make_user
from tests.scheduling.practice import weekly

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
EMAIL = "ana.alvarez@example.org"


@pytest.fixture
def practice(live_server: Any) -> None:
    """Built before the browser starts (Playwright's loop would make the ORM refuse)."""
    templates_install_builtin()
    clinic = Location.objects.create(
        name="East Side Clinic", time_zone="America/New_York", address="12 Grand St"
    )
    doctor = make_provider(clinic)
    for weekday in range(7):  # open every day, so the test runs on any date
        weekly(doctor, clinic, weekday, datetime.time(8), datetime.time(18))
    AppointmentType.objects.create(code="checkup", name="Check-up", minutes=30, self_bookable=True)
    AppointmentType.objects.create(code="procedure", name="Procedure", minutes=60)
    ana = make_patient("Ana", "Alvarez", datetime.date(1960, 2, 3))
    add_contact(ana, "email", EMAIL, verified=True, can_email=True)
    user = make_user(Role.PATIENT, "ana-portal")
    PortalAccount.objects.create(user=user, patient=ana, created_at=clock.now())


@pytest.fixture
def page(settings: Any, practice: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The live server speaks plain HTTP; Secure cookies would never come back over it.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        # A phone-sized screen: the portal is used on phones.
        context = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
        context.route(
            "**/*",
            lambda route: route.continue_()
            if route.request.url.startswith(("http://localhost", "http://127.0.0.1"))
            else route.abort(),
        )
        tab = context.new_page()
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda error: problems.append(str(error)))
        yield tab
        assert not problems, problems
        browser.close()


def test_a_patient_books_a_slot_sees_it_at_home_and_adds_it_to_a_calendar(
    page: Any, live_server: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/portal/signin/")
    page.get_by_label("E-mail or mobile number").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Ana")).to_be_visible()
    expect(page.get_by_text("You have no upcoming appointments.")).to_be_visible()

    page.get_by_role("link", name="Book an appointment").click()
    kinds = page.get_by_label("Kind of visit")
    expect(kinds.locator("option")).to_have_count(1)  # the procedure is staff-only
    kinds.select_option("checkup")
    new_york = clock.now().astimezone(ZoneInfo("America/New_York"))
    tomorrow = new_york.date() + datetime.timedelta(days=1)
    page.get_by_label("From date").fill(tomorrow.isoformat())
    page.get_by_role("button", name="Find times").click()
    first = page.locator("a.slot").first
    expect(first).to_be_visible()
    first.focus()
    page.keyboard.press("Enter")  # keyboard-usable

    expect(page.get_by_role("heading", name="Confirm your booking")).to_be_visible()
    expect(page.get_by_text("Bring your insurance card")).to_be_visible()
    page.get_by_role("button", name="Book this time").click()

    expect(page.get_by_text("Your appointment is booked")).to_be_visible()
    card = page.locator("li.card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Check-up")
    expect(card).to_contain_text("East Side Clinic")
    booked = Appointment.objects.get()
    assert booked.source == "portal" and booked.patient.given_name == "Ana"

    with page.expect_download() as download_info:
        card.get_by_role("link", name="Add to calendar").click()
    saved = tmp_path / "appointment.ics"
    download_info.value.save_as(saved)
    body = saved.read_text()
    assert body.startswith("BEGIN:VCALENDAR") and "METHOD:PUBLISH" in body
    assert f"UID:appointment-{booked.pk}@" in body
    assert booked.start.astimezone(datetime.UTC).strftime("DTSTART:%Y%m%dT%H%M%SZ") in body
