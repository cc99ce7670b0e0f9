"""A patient fills an intake form in a real browser: the conditional question appears
when she answers yes, she saves and comes back, sends it; a care coordinator then reads
her answers. No console error and no Content-Security-Policy violation on any page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from careloop.core import clock
from careloop.intake.models import QuestionnaireResponse
from careloop.portal.models import PortalAccount
from careloop.security.models import Role
from tests.browser.test_patient_profile import Problems, _open_page, _sign_in
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.intake.builders import assign, make_questionnaire
from tests.patients.builders import PASSWORD, make_user
from tests.portal.people import ANA_EMAIL, ana
from tests.security.personas import totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@dataclass
class World:
    patient_id: Any
    assignment_id: Any
    coordinator_key: bytes


@pytest.fixture
def world(live_server: Any) -> World:
    """Built before the browser starts (the ORM refuses to run in Playwright's loop)."""
    patient = ana()
    user = make_user(Role.PATIENT, username="ana-portal")
    PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())
    assignment = assign(patient, make_questionnaire())
    coordinator = make_user(Role.CARE_COORDINATOR, username="coord", first_name="Lee")
    return World(patient.pk, assignment.pk, bytes(totp_device(coordinator).bin_key))


@pytest.fixture
def browser(settings: Any, world: World) -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_a_patient_fills_a_conditional_form_saves_resumes_and_sends_it_and_staff_read_it(
    live_server: Any, browser: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    problems = Problems()
    page = _open_page(browser, problems)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone

    page.goto(f"{base}/portal/signin/")
    page.get_by_label("E-mail or mobile number").fill(ANA_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Forms to fill").click()
    page.get_by_role("link", name="New patient intake").click()
    expect(page.get_by_role("heading", name="New patient intake")).to_be_visible()
    _shot(page, "intake-01-form")

    # The packs question shows only once she says she smokes.
    packs = page.get_by_label("How many packs a day?")
    expect(packs).to_be_hidden()
    page.get_by_role("group", name="Do you smoke?").get_by_label("Yes").check()
    expect(packs).to_be_visible()
    packs.fill("2")
    page.get_by_label("Penicillin").check()
    page.get_by_label("Anything else we should know?").fill("Knee surgery in 2019")
    page.get_by_role("button", name="Save and continue later").click()
    expect(page.get_by_role("status")).to_contain_text("You can come back and finish")
    expect(page.get_by_text("Started: your answers are saved.")).to_be_visible()

    # Resumed: her answers are back, the conditional question with them.
    page.get_by_role("link", name="New patient intake").click()
    expect(packs).to_be_visible()
    expect(packs).to_have_value("2")
    expect(page.get_by_label("Anything else we should know?")).to_have_value("Knee surgery in 2019")
    # Saying no hides the question again; yes brings it back for the final answer.
    page.get_by_role("group", name="Do you smoke?").get_by_label("No").check()
    expect(packs).to_be_hidden()
    page.get_by_role("group", name="Do you smoke?").get_by_label("Yes").check()
    packs.fill("")
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_text("This question needs an answer.")).to_be_visible()
    page.get_by_label("How many packs a day?").fill("1")
    page.get_by_role("button", name="Send my answers").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    _shot(page, "intake-02-done")

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert QuestionnaireResponse.objects.get().status == "completed"

    staff = _open_page(browser, problems)
    _sign_in(staff, base, "coord", world.coordinator_key)
    staff.goto(f"{base}/patients/{world.patient_id}/")
    staff.get_by_role("link", name="Answers").click()
    staff.get_by_role("link", name="New patient intake").click()
    answers = staff.locator(".intake-answers")
    expect(answers).to_contain_text("How many packs a day?")
    expect(answers).to_contain_text("1")
    expect(answers).to_contain_text("Penicillin")
    expect(answers).to_contain_text("Knee surgery in 2019")
    _shot(staff, "intake-03-staff")

    assert problems.console_errors == []
    assert problems.csp_violations == []
    assert problems.failed_requests == []
