"""The journey editor and the message log in a real browser.

An admin opens a built-in journey, adds a step and moves it, is told exactly what is
wrong with an invalid duration, fixes it and saves a new version, then dry-runs it. A
front-desk user reads the message log and filters it to the withheld messages, each
with the decision that kept it back. Every page is checked for console errors, CSP
violations and failed requests.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django_otp.oath import hotp

from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.core import clock
from careloop.outreach.models import Journey
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.security.models import Role
from tests.browser.test_patient_profile import Problems, _open_page
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.outreach.conftest import reachable_patient
from tests.patients.builders import PASSWORD, make_user
from tests.security.personas import totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
STEP = 30


@pytest.fixture
def people(live_server: Any) -> dict[str, bytes]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    admin = make_user(Role.ADMIN, username="admin1", first_name="Ada", last_name="Moss")
    desk = make_user(Role.FRONT_DESK, username="desk1", first_name="Dana", last_name="Okafor")
    # Two messages: one queued, one withheld (no SMS consent on file).
    noon = datetime.datetime(2026, 6, 10, 16, 0, tzinfo=datetime.UTC)
    with clock.frozen(noon):
        for patient in (reachable_patient(), reachable_patient(sms_consent=False)):
            message_enqueue(
                patient=patient,
                channel=Channel.SMS,
                purpose=Purpose.APPOINTMENT,
                content_class=ContentClass.LOGISTICS,
                template_id="previsit-7d",
                template_version=1,
                rendered=Rendered(body="See you Tuesday at 2:30 PM."),
            )
    return {
        "admin1": bytes(totp_device(admin).bin_key),
        "desk1": bytes(totp_device(desk).bin_key),
    }


@pytest.fixture
def browser(settings: Any, people: dict[str, bytes]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _sign_in(page: Any, base: str, username: str, key: bytes) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code", exact=True).fill(
        f"{hotp(key, int(time.time()) // STEP, digits=6):06d}"
    )
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Today at a glance")).to_be_visible()


def test_admin_edits_a_journey_and_front_desk_reads_the_message_log(
    live_server: Any, browser: Any, people: dict[str, bytes], monkeypatch: Any
) -> None:
    from playwright.sync_api import expect

    # The test reads the database between pages, in Playwright's (event-loop) thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    base = live_server.url
    problems = Problems()
    page = _open_page(browser, problems)
    _sign_in(page, base, "admin1", people["admin1"])

    # The journeys, from the main navigation.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Journeys").click()
    expect(page.get_by_role("heading", name="Journeys", level=1)).to_be_visible()
    page.get_by_role("link", name="No-show recovery").click()
    editor = page.locator('[data-part="journey-editor"]')
    expect(editor.locator(".journey-step")).to_have_count(5)
    _shot(page, "outreach-01-journey")

    # Add a task step; it lands last; move it up one.
    page.get_by_label("New step").select_option("task")
    page.get_by_role("button", name="Add step").click()
    steps = editor.locator(".journey-step")
    expect(steps).to_have_count(6)
    expect(steps.nth(5)).to_have_attribute("data-kind", "task")
    page.get_by_role("button", name="Move step 6 up").click()
    expect(steps.nth(4)).to_have_attribute("data-kind", "task")
    expect(page.get_by_text("Changes not saved yet.")).to_be_visible()

    # An invalid duration: not saved, and the step says why.
    steps.nth(1).locator('input[name="s1-for"]').fill("7 days")
    page.get_by_role("button", name="Save journey").click()
    expect(page.locator('[data-part="errors"]')).to_contain_text("Step 2: for: not a duration")
    expect(steps.nth(1)).to_have_class("journey-step has-error")
    assert Journey.objects.get(key="no-show-recovery").version == 1

    # Fixed, saved: a new version with the new step.
    steps.nth(1).locator('input[name="s1-for"]').fill("P5D")
    page.get_by_role("button", name="Save journey").click()
    expect(page.locator('[data-part="saved"]')).to_contain_text("Saved as version 2")
    journey = Journey.objects.get(key="no-show-recovery")
    assert journey.definition["steps"][1] == {"kind": "wait", "for": "P5D"}
    assert [s["kind"] for s in journey.definition["steps"]] == [
        "send",
        "wait",
        "send",
        "wait",
        "task",
        "task",
    ]
    _shot(page, "outreach-02-saved")

    # Dry run: nothing to find today, said plainly.
    page.get_by_role("link", name="Dry run").click()
    expect(page.locator('[data-part="dry-run-summary"]')).to_contain_text(
        "0 patients the trigger finds now"
    )
    page.context.close()

    # The front desk: the message log, filtered to the withheld messages.
    page = _open_page(browser, problems)
    _sign_in(page, base, "desk1", people["desk1"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Messages").click()
    log = page.locator('[data-part="message-log"] tbody tr')
    expect(log).to_have_count(2)
    page.get_by_label("Status").select_option("withheld")
    page.get_by_role("button", name="Filter").click()
    expect(log).to_have_count(1)
    expect(log.first).to_contain_text("no_consent")
    expect(log.first).to_contain_text("Rosa Delgado")
    _shot(page, "outreach-03-message-log")
    page.context.close()

    assert problems.csp_violations == []
    # The one refused save answers 400, which Chromium logs; nothing else.
    refused = [e for e in problems.console_errors if "status of 400" in e]
    assert len(refused) == 1 and "/outreach/journeys/no-show-recovery/" in refused[0]
    assert [e for e in problems.console_errors if e not in refused] == []
    assert [r.split(" ")[0] for r in problems.failed_requests] == ["400"]
