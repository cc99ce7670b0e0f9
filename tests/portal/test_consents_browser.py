"""In a real browser on a phone-sized screen: a patient signs in to the portal, signs a
pending consent (ticking the agreement with the keyboard) and changes a preference.

Every page is checked for console errors and Content-Security-Policy violations.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest

from careloop.consent.documents import consent_document_publish
from careloop.consent.models import (
    CaptureMethod,
    ChannelOptIn,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
)
from careloop.core import clock
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount
from careloop.security.models import Role
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.patients.builders import PASSWORD, add_contact, make_patient, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "lucia.mendez@example.org"
TEXT = "Video visits are private.\n\nYou may ask for an in-person visit at any time."


@pytest.fixture
def lucia(live_server: Any) -> Patient:
    """Built before the browser starts (Playwright's loop makes the ORM refuse)."""
    patient = make_patient("Lucía", "Méndez", datetime.date(1984, 9, 12))
    add_contact(patient, "email", EMAIL, verified=True, can_email=True)
    user = make_user(Role.PATIENT, username="lucia-portal")
    PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())
    consent_document_publish(
        actor=None,
        kind=ConsentKind.TELEHEALTH,
        version="2026-11",
        title="Telehealth consent",
        body=TEXT,
        requires_acknowledgement=True,
    )
    return patient


@pytest.fixture
def browser(settings: Any, lucia: Patient) -> Iterator[Any]:
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


def test_a_patient_signs_a_pending_consent_and_changes_a_preference(
    browser: Any, live_server: Any, lucia: Patient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.route(
        "**/*",
        lambda route: route.continue_()
        if route.request.url.startswith(live_server.url)
        else route.abort(),
    )
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    base = live_server.url

    page.goto(f"{base}/portal/signin/")
    page.get_by_label("E-mail or mobile number").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Consents").click()
    expect(page.get_by_role("heading", name="Waiting for your signature")).to_be_visible()
    _shot(page, "portal-consents")

    page.get_by_role("link", name="Read and sign: Telehealth consent").click()
    expect(page.get_by_role("region", name="Document text")).to_contain_text("Video visits")
    agree = page.get_by_label("I have read this document and I agree to it")
    agree.focus()
    page.keyboard.press("Space")
    expect(agree).to_be_checked()
    page.get_by_label("Type your full name to sign").fill("Lucía Méndez")
    _shot(page, "portal-consent-sign")
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Your signature is recorded")
    expect(page.get_by_text("Nothing is waiting for your signature.")).to_be_visible()
    expect(page.get_by_role("link", name="Revoke: Telehealth (video visits)")).to_be_visible()

    page.get_by_role("link", name="Communication preferences").first.click()
    page.get_by_label("Push notifications", exact=True).check()
    surveys = page.get_by_role("group", name="Surveys")
    surveys.get_by_label("E-mail", exact=True).uncheck()
    page.get_by_label("First choice").select_option("email")
    page.get_by_label("Quiet hours start").fill("21:30")
    page.get_by_label("Quiet hours end").fill("07:00")
    # Nothing spills sideways on a phone.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the preference page is {width}px wide on a 390px screen"
    _shot(page, "portal-preferences")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_contain_text("Your preferences are saved.")
    expect(page.get_by_label("Push notifications", exact=True)).to_be_checked()

    signed = ConsentRecord.objects.get(patient=lucia, kind=ConsentKind.TELEHEALTH)
    assert signed.capture_method == CaptureMethod.PORTAL_ESIGNATURE
    assert signed.signature_name == "Lucía Méndez"
    push = ConsentRecord.objects.get(patient=lucia, kind=ConsentKind.PUSH)
    assert (push.status, push.capture_method) == (
        ConsentStatus.GRANTED,
        CaptureMethod.PORTAL_PREFERENCES,
    )
    assert not ChannelOptIn.objects.get(patient=lucia, channel="email", purpose="survey").opted_in
    assert problems == []
    context.close()
