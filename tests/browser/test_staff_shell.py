"""The staff shell in a real browser: sign in, read the counts, search as you type, open a patient.

Drives Debian's Chromium through Playwright (`playwright install` cannot download
browsers here). Set CARELOOP_SCREENSHOTS=<dir> to keep a screenshot of each page.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from careloop.patients.models import LifecycleStage, Sex
from careloop.security.models import Role
from tests.patients.builders import (
    PASSWORD,
    add_contact,
    add_mrn,
    make_location,
    make_patient,
    make_provider,
    make_user,
)
from tests.security.personas import totp_code_now, totp_device

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--headless",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _missing(reason: str) -> None:
    # A developer without Chromium may skip; CI must have it, so there it is a failure.
    if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"{reason}, and under CI that is a failure (apt-get install chromium)")
    pytest.skip(f"{reason} (apt-get install chromium to run the browser tests)")


@pytest.fixture
def practice(live_server: Any) -> bytes:
    """Built before the browser starts: Playwright's event loop in this thread would
    make the ORM refuse to run (SynchronousOnlyOperation)."""
    front_desk = make_user(
        Role.FRONT_DESK, username="frontdesk", first_name="Dana", last_name="Okafor"
    )
    location = make_location()
    provider = make_provider(location)
    ana = make_patient(
        "Ana",
        "García",
        datetime.date(1962, 3, 14),
        sex=Sex.FEMALE,
        preferred_language="es",
        city="Springfield",
        lifecycle_stage=LifecycleStage.CHRONIC,
        primary_provider=provider,
        home_location=location,
    )
    add_contact(ana, "phone", "(217) 555-0142")
    add_mrn(ana, "RB-004521")
    make_patient("José", "Rivera", datetime.date(1990, 7, 4), sex=Sex.MALE)
    for n in range(3):
        make_patient(f"Sam{n}", "Lee", datetime.date(1985, 5, 1 + n))
    return bytes(totp_device(front_desk).bin_key)


@pytest.fixture
def page(settings: Any, practice: bytes) -> Iterator[Any]:
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
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        # The app must work with no third-party host at all: refuse anything not local.
        context.route(
            "**/*",
            lambda route: route.continue_()
            if route.request.url.startswith(("http://localhost", "http://127.0.0.1"))
            else route.abort(),
        )
        yield context.new_page()
        context.close()
        browser.close()


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("CARELOOP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_staff_member_signs_in_searches_as_they_type_and_opens_a_patient(
    live_server: Any, page: Any, practice: bytes
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    _shot(page, "1-login")
    page.get_by_label("Username").fill("frontdesk")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("did not match")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # The second step: a code from the authenticator app.
    expect(page.get_by_role("heading", name="Verification code")).to_be_visible()
    page.get_by_label("Code", exact=True).fill(totp_code_now(practice))
    page.get_by_role("button", name="Verify").click()

    expect(page.get_by_role("heading", name="Today at a glance")).to_be_visible()
    expect(page.locator('[data-stat="active-patients"] .stat-value')).to_have_text("5")
    expect(page.locator(".account")).to_contain_text("Front desk")
    _shot(page, "2-home")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    expect(page.locator(".patient-table tbody tr")).to_have_count(5)
    _shot(page, "3-patients")

    # Typing alone (no Enter, no button) updates the results through htmx.
    page.get_by_label("Search patients").press_sequentially("garcia", delay=40)
    expect(page.locator(".patient-table tbody tr")).to_have_count(1)
    expect(page.locator(".results-meta")).to_contain_text("garcia")
    assert page.url == f"{live_server.url}/patients/"  # the search is never in the URL
    _shot(page, "4-search")

    page.get_by_label("Search patients").fill("")
    page.get_by_label("Search patients").press_sequentially("217.555.0142", delay=20)
    expect(page.get_by_role("link", name="García, Ana")).to_be_visible()
    page.get_by_role("link", name="García, Ana").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Ana García")
    expect(page.locator("body")).to_contain_text("RB-004521")
    expect(page.locator("body")).to_contain_text("Spanish (es)")
    expect(page.locator("body")).to_contain_text("Dr. Maya Chen")
    _shot(page, "5-patient")

    # Phone width: nothing may stick out sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", "/patients/", page.url.removeprefix(live_server.url)):
        page.goto(f"{live_server.url}{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"
        _shot(page, f"6-phone{path.replace('/', '-')}")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
