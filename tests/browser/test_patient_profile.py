"""The patient profile in a real browser, the way the front desk uses it: register a
patient (and be stopped at the duplicate), find them by every identifier, read the
profile and timeline, change contacts and preferences, take an e-signature for the
privacy notice; a coordinator's relationship note stays hidden from the front desk.

Every page is checked for console errors and Content-Security-Policy violations.
Set CARELOOP_SCREENSHOTS=<dir> to keep a screenshot of each page.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from careloop.consent.documents import consent_document_publish
from careloop.consent.models import ConsentKind
from careloop.patients.models import Sex
from careloop.security.models import Role
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.patients.builders import PASSWORD, make_patient, make_user
from tests.security.personas import totp_code_now, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass
class Keys:
    front_desk: bytes
    coordinator: bytes


@dataclass
class Problems:
    """What the browser reported while the test ran; each must stay empty."""

    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


@pytest.fixture
def keys(live_server: Any) -> Keys:
    """Built before the browser starts: Playwright's event loop in this thread would
    make the ORM refuse to run (SynchronousOnlyOperation)."""
    front_desk = make_user(
        Role.FRONT_DESK, username="frontdesk", first_name="Dana", last_name="Okafor"
    )
    coordinator = make_user(
        Role.CARE_COORDINATOR, username="coord", first_name="Lee", last_name="Park"
    )
    make_patient("José", "Rivera", datetime.date(1990, 7, 4), sex=Sex.MALE)
    consent_document_publish(
        actor=None,
        kind=ConsentKind.NPP_ACK,
        version="2026-01",
        title="Notice of Privacy Practices",
        body="How Riverbend uses and shares your health information.\n\nYour rights.",
        requires_acknowledgement=True,
    )
    return Keys(
        front_desk=bytes(totp_device(front_desk).bin_key),
        coordinator=bytes(totp_device(coordinator).bin_key),
    )


@pytest.fixture
def browser(settings: Any, keys: Keys) -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
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


def _open_page(browser: Any, problems: Problems) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    # The app must work with no third-party host at all: refuse anything not local.
    context.route(
        "**/*",
        lambda route: route.continue_()
        if route.request.url.startswith(("http://localhost", "http://127.0.0.1"))
        else route.abort(),
    )
    page = context.new_page()

    def on_console(message: Any) -> None:
        if message.type != "error":
            return
        text = f"{page.url}: {message.text}"
        # Chromium reports a CSP violation on the console as "Refused to ...".
        if "Content Security Policy" in message.text:
            problems.csp_violations.append(text)
        else:
            problems.console_errors.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.console_errors.append(f"{page.url}: {error}"))
    page.on(
        "response",
        lambda r: problems.failed_requests.append(f"{r.status} {r.url}")
        if r.status >= 400 and not r.url.endswith("/favicon.ico")
        else None,
    )
    return page


def _sign_in(page: Any, base: str, username: str, key: bytes) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code", exact=True).fill(totp_code_now(key))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Today at a glance")).to_be_visible()


def _register(page: Any) -> None:
    page.get_by_label("First name").fill("Marisol")
    page.get_by_label("Last name").fill("Quintero")
    page.get_by_label("Date of birth").fill("1971-06-02")
    page.get_by_label("Sex", exact=True).select_option("female")
    page.get_by_label("Preferred language").select_option("es")
    page.get_by_label("Time zone").select_option("America/Chicago")
    page.get_by_label("State (2 letters)").fill("tx")
    page.get_by_label("Mobile phone").fill("(512) 555-0199")
    page.get_by_label("E-mail").fill("Marisol.Q@example.org")
    page.get_by_label("MRN (if the EHR has one)").fill("RB-007700")
    page.get_by_role("button", name="Register").click()


def _search(page: Any, text: str) -> None:
    from playwright.sync_api import expect

    box = page.get_by_label("Search patients")
    box.fill("")
    box.press_sequentially(text, delay=15)
    # Typing alone updates the results (htmx): one row, the new patient.
    expect(page.locator(".patient-table tbody tr")).to_have_count(1)
    expect(page.get_by_role("link", name="Quintero, Marisol")).to_be_visible()


def _timeline(page: Any) -> list[str]:
    texts: list[str] = page.locator(".timeline .timeline-item").all_inner_texts()
    return texts


def test_front_desk_registers_finds_edits_and_takes_a_signature_for_a_patient(
    live_server: Any, browser: Any, keys: Keys
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    problems = Problems()
    page = _open_page(browser, problems)
    _sign_in(page, base, "frontdesk", keys.front_desk)

    # 1. Register, then register the same person again: careloop stops at the duplicate.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.goto(f"{base}/patients/new/")
    expect(page.get_by_role("heading", name="Register a patient")).to_be_visible()
    _shot(page, "profile-01-register")
    _register(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Marisol Quintero")
    profile_url = page.url
    page.goto(f"{base}/patients/new/")
    _register(page)
    expect(page.get_by_role("alert")).to_contain_text("already have")
    expect(page.get_by_role("textbox", name="Why this is a different person")).to_be_visible()
    _shot(page, "profile-02-duplicate")
    page.get_by_role("link", name="Open this record").click()
    assert page.url == profile_url

    # 2. Find her by every identifier, in the shapes people type them. One row each time
    # also shows the second registration created nothing.
    page.goto(f"{base}/patients/")
    for text in (
        "Marisol Quintero",
        "06/02/1971",
        "512.555.0199",
        "MARISOL.Q@EXAMPLE.ORG",
        "RB-007700",
    ):
        _search(page, text)
    assert page.url == f"{base}/patients/"  # the search never reaches the URL
    _shot(page, "profile-03-search")
    page.get_by_role("link", name="Quintero, Marisol").click()

    # 3. The profile: demographics, stage with its reason, the timeline.
    expect(page.get_by_role("heading", level=1)).to_contain_text("Marisol Quintero")
    demographics = page.locator("section", has=page.locator("#demo-title"))
    expect(demographics).to_contain_text("June 2, 1971")
    expect(demographics).to_contain_text("Female")
    expect(demographics).to_contain_text("Spanish")
    expect(page.locator("#lifecycle .stage")).not_to_be_empty()
    expect(page.locator("#lifecycle .stage-reason")).not_to_be_empty()
    expect(page.locator("body")).to_contain_text("RB-007700")
    assert "Registered" in _timeline(page)[-1]
    _shot(page, "profile-04-profile")

    # Phone width: nothing on the profile may stick out sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the profile is {overflow}px wider than a phone screen"
    _shot(page, "profile-05-phone")
    page.set_viewport_size({"width": 1280, "height": 860})

    # 4. A second phone number, then preferences; both land on the timeline, newest first.
    contact_card = page.locator("section", has=page.locator("#contact-title"))
    contact_card.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Add a phone or e-mail")).to_be_visible()
    page.get_by_label("Type:", exact=True).select_option("phone")
    page.get_by_label("Use:", exact=True).select_option("home")
    page.get_by_label("Number or address").fill("512-555-0123")
    page.get_by_label("Rank:", exact=True).fill("2")
    page.get_by_label("Voice", exact=True).check()
    page.get_by_role("button", name="Add contact").click()
    expect(page.locator(".table")).to_contain_text("555")
    _shot(page, "profile-06-contacts")
    page.get_by_role("link", name="Back to patient").first.click()
    expect(page.locator("section", has=page.locator("#contact-title"))).to_contain_text("0123")
    assert "Contact details changed" in _timeline(page)[0]

    page.get_by_role("link", name="Preferences").click()
    expect(page.get_by_role("heading", name="Communication preferences")).to_be_visible()
    page.get_by_label("E-mail: Marketing").select_option("out")
    page.get_by_label("Quiet hours from (local, HH:MM)").fill("21:00")
    page.get_by_label("Quiet hours until (local, HH:MM)").fill("08:00")
    page.get_by_label("Do not contact").uncheck()
    page.get_by_label("How the patient told us").select_option("verbal")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_label("E-mail: Marketing")).to_have_value("out")
    expect(page.get_by_label("Quiet hours from (local, HH:MM)")).to_have_value("21:00")
    expect(page.get_by_label("Do not contact")).not_to_be_checked()
    _shot(page, "profile-07-preferences")
    page.goto(profile_url)
    assert "Communication preferences updated" in _timeline(page)[0]

    # 5. The privacy notice needs acknowledging: the signature is required.
    consents = page.locator('[data-part="consents"]')
    expect(consents).to_contain_text("Needs to acknowledge: Notice of Privacy Practices")
    consents.get_by_role("link", name="Sign now").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Notice of Privacy Practices")
    page.get_by_label("I have read and agree").check()
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Full name of the signer")
    _shot(page, "profile-08-sign-error")
    page.get_by_label("Full name of the signer").fill("Marisol Quintero")
    page.get_by_label("I have read and agree").check()
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(page.get_by_role("heading", name="Consent history")).to_be_visible()
    row = page.locator("tbody tr", has_text="Notice of Privacy Practices")
    expect(row).to_contain_text("Staff-assisted e-signature")
    expect(row).to_contain_text("Marisol Quintero")
    expect(row).to_contain_text("2026-01")
    _shot(page, "profile-09-history")
    page.goto(profile_url)
    consents = page.locator('[data-part="consents"]')
    expect(consents).not_to_contain_text("Needs to acknowledge")
    expect(consents).to_contain_text("Notice of Privacy Practices")
    _shot(page, "profile-10-after-signing")

    # 6. The front desk has no notes: no card, and the page itself is refused.
    expect(page.locator("#notes-title")).to_have_count(0)
    response = page.goto(f"{profile_url}notes/")
    assert response is not None and response.status in (403, 404)
    # That refusal is the point; it is the only failed load the test allows.
    refused = f"{profile_url}notes/"
    problems.failed_requests = [r for r in problems.failed_requests if refused not in r]
    problems.console_errors = [e for e in problems.console_errors if not e.startswith(refused)]

    coordinator_page = _open_page(browser, problems)
    _sign_in(coordinator_page, base, "coord", keys.coordinator)
    coordinator_page.goto(profile_url)
    coordinator_page.get_by_role("link", name="All notes and history").click()
    coordinator_page.get_by_role("textbox", name="Note").fill(
        "Prefers calls after work; daughter helps."
    )
    coordinator_page.get_by_role("button", name="Add note").click()
    expect(coordinator_page.locator(".note-list")).to_contain_text("daughter helps")
    _shot(coordinator_page, "profile-11-notes")
    coordinator_page.goto(profile_url)
    expect(coordinator_page.locator(".note-list")).to_contain_text("daughter helps")
    coordinator_page.context.close()

    # Back in the front desk's session, still open: signing in again within the same
    # 30 seconds would reuse the TOTP code, which is refused as a replay.
    page.goto(profile_url)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Marisol Quintero")
    expect(page.locator("body")).not_to_contain_text("daughter helps")
    page.context.close()

    assert problems.csp_violations == []
    assert problems.console_errors == []
    assert problems.failed_requests == []
