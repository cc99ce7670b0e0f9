"""Secure messaging in a real browser: a patient writes, staff answer, both see receipts.

Ana signs in to the portal on a phone-sized screen, writes to her care team with a PDF
attached, and sees "Not read yet". Dr Chen signs in to the staff app, finds the thread
in the team inbox (unread, answer due), opens it, downloads nothing inline, answers.
Ana sees the answer (and that the practice read hers); Dr Chen sees "Read by the
patient". No page logs a console error, breaks the CSP or loads anything from away.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from careloop.portal.models import Thread, ThreadMessage
from careloop.security.models import Role
from tests.browser.test_patient_profile import Problems, _open_page
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.patients.builders import PASSWORD, make_location, make_provider, make_user
from tests.portal.people import ANA_EMAIL, ana, registered
from tests.security.personas import totp_code_now, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTION = "My ankles are swollen since the new dose. Should I keep taking it?"
ANSWER = "Please pause the new dose and come in on Thursday at 9."
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def people(live_server: Any) -> bytes:
    """Ana with a portal account, and Dr Chen (her clinician) with a TOTP key; built
    before the browser starts (the ORM refuses to run inside Playwright's loop)."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    chen = make_provider(make_location("Main Street Clinic"), "Dr. Maya Chen")
    patient = ana()
    patient.primary_provider = chen
    patient.save(update_fields=["primary_provider"])
    registered(patient)
    clinician = make_user(
        Role.CLINICIAN, username="chen", first_name="Maya", last_name="Chen", provider=chen
    )
    return bytes(totp_device(clinician).bin_key)


@pytest.fixture
def browser(settings: Any, people: bytes) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_patient_writes_staff_answer_and_both_see_it_read(
    live_server: Any, browser: Any, people: bytes, tmp_path: Any, monkeypatch: Any
) -> None:
    from playwright.sync_api import expect

    # The test reads the database between pages, in Playwright's (event-loop) thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = live_server.url
    problems = Problems()
    attachment = tmp_path / "blood-pressure-log.pdf"
    attachment.write_bytes(PDF)

    # Ana, on her phone: sign in, Messages, New message.
    phone = _open_page(browser, problems)
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{base}/portal/signin/")
    phone.get_by_label("E-mail or mobile number").fill(ANA_EMAIL)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign in").click()
    phone.get_by_role("navigation", name="Portal").get_by_role("link", name="Messages").click()
    expect(phone.get_by_role("heading", name="Messages", level=1)).to_be_visible()
    expect(phone.get_by_text("You have no messages yet.")).to_be_visible()
    phone.get_by_role("link", name="New message").click()
    phone.get_by_label("To").select_option("care_team")
    phone.get_by_label("Subject").fill("Swollen ankles")
    phone.get_by_label("Message").fill(QUESTION)
    phone.get_by_label("Attach files (optional)").set_input_files(str(attachment))
    phone.get_by_role("button", name="Send message").click()
    expect(phone.get_by_role("status")).to_contain_text("Your message was sent.")
    expect(phone.get_by_role("heading", name="Swollen ankles")).to_be_visible()
    expect(phone.locator('[data-part="receipt"]')).to_have_text("Not read yet")
    expect(phone.get_by_role("link", name="blood-pressure-log.pdf")).to_be_visible()
    # Nothing is wider than the phone's screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(phone, "messaging-01-patient-sent")

    # Dr Chen: the team inbox shows it unread with an answer due; she opens and answers.
    desk = _open_page(browser, problems)
    desk.goto(f"{base}/accounts/login/")
    desk.get_by_label("Username").fill("chen")
    desk.get_by_label("Password").fill(PASSWORD)
    desk.get_by_role("button", name="Sign in").click()
    desk.get_by_label("Code", exact=True).fill(totp_code_now(people))
    desk.get_by_role("button", name="Verify").click()
    desk.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox").click()
    row = desk.locator('[data-part="threads"] tbody tr').first
    expect(row).to_contain_text("Swollen ankles")
    expect(row).to_contain_text("1 unread")
    expect(row).to_contain_text("Unassigned")
    _shot(desk, "messaging-02-inbox")
    row.get_by_role("link", name="Swollen ankles").click()
    expect(desk.locator('[data-part="posts"]')).to_contain_text(QUESTION)
    with desk.expect_download() as download:
        desk.get_by_role("link", name="blood-pressure-log.pdf").click()
    assert download.value.suggested_filename == "blood-pressure-log.pdf"
    desk.get_by_label("Message to the patient").fill(ANSWER)
    desk.get_by_role("button", name="Send reply").click()
    expect(desk.get_by_role("status")).to_contain_text("Reply sent")
    expect(desk.locator('[data-part="receipt"]')).to_have_text("Not read by the patient yet")
    expect(desk.get_by_label("Assigned to")).to_have_value(str(_chen_id()))

    # Ana: the inbox marks the answer new; she reads it, and sees the practice read hers.
    phone.get_by_role("link", name="Back to messages").click()
    expect(phone.locator(".badge")).to_have_text("1 new")
    phone.get_by_role("link", name="Swollen ankles").click()
    expect(phone.locator('[data-part="posts"]')).to_contain_text(ANSWER)
    expect(phone.locator('[data-part="posts"]')).to_contain_text("Maya Chen")
    expect(phone.locator('[data-part="receipt"]')).to_contain_text("Read by the practice")
    _shot(phone, "messaging-03-patient-answer")

    # Dr Chen sees that Ana read the answer.
    desk.reload()
    expect(desk.locator('[data-part="receipt"]')).to_contain_text("Read by the patient")
    _shot(desk, "messaging-04-staff-read")

    assert Thread.objects.count() == 1
    assert ThreadMessage.objects.filter(read_at__isnull=False).count() == 2
    assert problems == Problems(), problems


def _chen_id() -> int:
    from careloop.security.models import User

    return User.objects.get(username="chen").pk
