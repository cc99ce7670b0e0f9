"""Issue 8's "done means", in one real browser session (Debian's Chromium, Playwright).

Ana is on file at the practice but has never used the portal. On her phone she
registers (date of birth and a code e-mailed to the address on file) and lands in her
own record, not a new one; signs the telehealth consent; books a video visit in a
self-bookable slot; fills the intake form the visit asks for; writes to her care team,
and a front-desk colleague answers from the team inbox; confirms the visit from the
link in her reminder; and, ten minutes before the start, joins the video visit.

The clock is pinned (careloop.core.clock) so the visit's time is known; moving it ten
minutes keeps her session inside the 15-minute idle limit, as a real wait would.
The video service is the only host outside the live server the page may reach, and
the browser is answered for it by the test (it is not part of careloop). No page logs
a console error, breaks the Content-Security-Policy or fails a request.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from careloop.consent.documents import consent_document_publish
from careloop.consent.models import ConsentKind
from careloop.core import clock
from careloop.intake.models import QuestionnaireResponse
from careloop.outreach.links import links_for
from careloop.outreach.models import Message
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount, ThreadMessage
from careloop.scheduling.models import Appointment, AppointmentStatus, AppointmentType, Location
from careloop.security.models import Role
from tests.browser.test_patient_profile import Problems, _open_page, _sign_in
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.intake.builders import make_questionnaire
from tests.patients.builders import PASSWORD, make_provider, make_user
from tests.portal.people import ANA_BORN, ANA_EMAIL, ana
from tests.scheduling.practice import weekly
from tests.security.personas import totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JITSI = "https://meet.careloop.test"
ZONE = "America/New_York"
QUESTION = "Can we talk about my blood pressure readings at the video visit?"
ANSWER = "Yes — please have your readings from this week ready."
VISIT_FORM = {
    "resourceType": "Questionnaire",
    "url": "https://careloop.test/Questionnaire/video-visit",
    "version": "1",
    "status": "active",
    "title": "Before your video visit",
    "item": [
        {
            "linkId": "topic",
            "text": "What would you like to talk about?",
            "type": "string",
            "required": True,
        }
    ],
}


@dataclass(frozen=True)
class World:
    start: datetime.datetime  # the pinned "now"
    visit: datetime.datetime  # the slot Ana will book
    desk_key: bytes
    patients: int


def _next_hour() -> datetime.datetime:
    at = clock.now().replace(minute=0, second=0, microsecond=0)
    return at + datetime.timedelta(hours=1)


@pytest.fixture
def world(live_server: Any, settings: Any) -> Iterator[World]:
    """The practice, pinned to a moment; built before the browser starts (the ORM
    refuses to run inside Playwright's event loop)."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    settings.TELEHEALTH_JITSI_BASE_URL = JITSI
    start = _next_hour()
    with clock.frozen(start):
        clinic = Location.objects.create(name="Riverbend Clinic", time_zone=ZONE)
        doctor = make_provider(clinic, "Dr. Maya Chen")
        for weekday in range(7):  # open all day every day: the test runs at any hour
            weekly(doctor, clinic, weekday, datetime.time(0), datetime.time(23, 40))
        AppointmentType.objects.create(
            code="video", name="Video visit", minutes=20, telehealth=True, self_bookable=True
        )
        ana()  # on file, with a verified e-mail address; no portal account yet
        consent_document_publish(
            actor=None,
            kind=ConsentKind.TELEHEALTH,
            version="2026-11",
            title="Telehealth consent",
            body="Video visits are private.\n\nYou may ask for an in-person visit at any time.",
            requires_acknowledgement=True,
        )
        make_questionnaire(VISIT_FORM, required_for_types=["video"])
        desk = make_user(Role.FRONT_DESK, username="desk", first_name="Dana", last_name="Okafor")
        yield World(
            start=start,
            visit=start + datetime.timedelta(minutes=20),
            desk_key=bytes(totp_device(desk).bin_key),
            patients=Patient.objects.count(),
        )


@pytest.fixture
def browser(settings: Any, world: World) -> Iterator[Any]:
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


def _code_sent_to_ana() -> str:
    message = Message.objects.filter(template_id="portal-verify-code").latest("created_at")
    found = re.search(r"\b(\d{6})\b", message.body)
    assert found is not None
    return found.group(1)


def test_a_patient_registers_books_fills_signs_messages_confirms_and_joins(
    live_server: Any, browser: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    # The test reads the database between pages, in Playwright's (event-loop) thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = live_server.url
    problems = Problems()
    phone = _open_page(browser, problems)
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.context.route(
        f"{JITSI}/**",
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>Video</title>"
        ),
    )

    # 1. Register: her details and the code e-mailed to the address on file.
    phone.goto(f"{base}/portal/register/")
    phone.get_by_label("First name").fill("Ana")
    phone.get_by_label("Last name").fill("Alvarez")
    phone.get_by_label("Date of birth").fill(ANA_BORN.isoformat())
    phone.get_by_label("E-mail or mobile number on file").fill(ANA_EMAIL)
    phone.get_by_role("button", name="Send me a code").click()
    phone.get_by_label("6-digit code").fill(_code_sent_to_ana())
    phone.get_by_label("Choose a password").fill(PASSWORD)
    phone.get_by_label("The same password again").fill(PASSWORD)
    phone.get_by_role("button", name="Create my account").click()
    expect(phone.get_by_role("heading", name="Welcome, Ana")).to_be_visible()
    account = PortalAccount.objects.select_related("patient").get()
    assert Patient.objects.count() == world.patients, "linked to her record, no new one"
    assert account.patient.given_name == "Ana"
    _shot(phone, "journey-01-registered")

    # 2. Sign the telehealth consent.
    phone.get_by_role("navigation", name="Portal").get_by_role("link", name="Consents").click()
    phone.get_by_role("link", name="Read and sign: Telehealth consent").click()
    phone.get_by_label("I have read this document and I agree to it").check()
    phone.get_by_label("Type your full name to sign").fill("Ana Alvarez")
    phone.get_by_role("button", name="Sign", exact=True).click()
    expect(phone.get_by_role("status")).to_contain_text("Your signature is recorded")

    # 3. Book the video visit twenty minutes from now.
    phone.goto(f"{base}/portal/")
    phone.get_by_role("link", name="Book an appointment").click()
    phone.get_by_label("Kind of visit").select_option("video")
    local_day = world.visit.astimezone(ZoneInfo(ZONE)).date()
    phone.get_by_label("From date").fill(local_day.isoformat())
    phone.get_by_role("button", name="Find times").click()
    slot = phone.locator(f'a.slot[href*="{int(world.visit.timestamp())}"]')
    expect(slot).to_be_visible()
    slot.click()
    expect(phone.get_by_role("heading", name="Confirm your booking")).to_be_visible()
    phone.get_by_role("button", name="Book this time").click()
    expect(phone.get_by_text("Your appointment is booked")).to_be_visible()
    visit = Appointment.objects.get()
    assert (visit.start, visit.source, visit.patient_id) == (
        world.visit,
        "portal",
        account.patient_id,
    )
    _shot(phone, "journey-02-booked")

    # 4. Fill the intake form the visit asks for.
    phone.get_by_role("link", name="Forms to fill").first.click()
    phone.get_by_role("link", name="Before your video visit").click()
    phone.get_by_label("What would you like to talk about?").fill("Blood pressure")
    phone.get_by_role("button", name="Send my answers").click()
    expect(phone.get_by_role("heading", name="Thank you")).to_be_visible()
    assert QuestionnaireResponse.objects.get().status == "completed"

    # 5. Write to the care team; the front desk answers from the team inbox.
    phone.get_by_role("navigation", name="Portal").get_by_role("link", name="Messages").click()
    phone.get_by_role("link", name="New message").click()
    phone.get_by_label("To").select_option("care_team")
    phone.get_by_label("Subject").fill("Readings")
    phone.get_by_label("Message").fill(QUESTION)
    phone.get_by_role("button", name="Send message").click()
    expect(phone.get_by_role("status")).to_contain_text("Your message was sent.")

    desk = _open_page(browser, problems)
    _sign_in(desk, base, "desk", world.desk_key)
    desk.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox").click()
    desk.get_by_role("link", name="Readings").click()
    expect(desk.locator('[data-part="posts"]')).to_contain_text(QUESTION)
    desk.get_by_label("Message to the patient").fill(ANSWER)
    desk.get_by_role("button", name="Send reply").click()
    expect(desk.get_by_role("status")).to_contain_text("Reply sent")

    phone.get_by_role("link", name="Back to messages").click()
    phone.get_by_role("link", name="Readings").click()
    expect(phone.locator('[data-part="posts"]')).to_contain_text(ANSWER)
    assert ThreadMessage.objects.filter(read_at__isnull=False).count() == 2
    _shot(phone, "journey-03-answered")

    # 6. Confirm from the reminder: the link its text carries.
    confirm = links_for(patient=account.patient, appointment=visit, purpose="appointment")
    phone.goto(base + urlsplit(confirm["confirm"]).path)
    phone.get_by_role("button", name="Confirm my visit").click()
    expect(phone.get_by_role("heading", name="Your visit is confirmed")).to_be_visible()
    visit.refresh_from_db()
    assert visit.status == AppointmentStatus.CONFIRMED

    # 7. Ten minutes before the start, join the video visit from the home page.
    with clock.frozen(world.start + datetime.timedelta(minutes=10)):
        phone.goto(f"{base}/portal/")
        phone.get_by_role("link", name="Join video visit").click()
        phone.wait_for_url(f"{JITSI}/**")
    visit.refresh_from_db()
    assert visit.telehealth_room and visit.telehealth_room in phone.url

    assert problems.console_errors == []
    assert problems.csp_violations == []
    assert problems.failed_requests == []
