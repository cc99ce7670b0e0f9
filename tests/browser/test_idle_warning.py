"""The idle-logout warning in a real browser: it shows before the idle sign-out,
"Stay signed in" keeps the session, and without it the page goes to sign-in.

The timeout is shortened to seconds through settings; the script reads every time
from the server, so the behaviour is the same as with 15 minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from careloop.security.models import Role
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing
from tests.patients.builders import PASSWORD, make_user
from tests.security.personas import totp_code_now, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IDLE_SECONDS = 16
WARN_SECONDS = 12


@pytest.fixture
def totp_key(live_server: Any) -> bytes:
    user = make_user(Role.FRONT_DESK, username="frontdesk")
    return bytes(totp_device(user).bin_key)


@pytest.fixture
def page(settings: Any, totp_key: bytes) -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SESSION_IDLE_TIMEOUT = IDLE_SECONDS
    settings.SESSION_IDLE_WARNING_SECONDS = WARN_SECONDS
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()
        yield context.new_page()
        context.close()
        browser.close()


def test_idle_warning_offers_to_stay_signed_in_then_signs_out(
    live_server: Any, page: Any, totp_key: bytes
) -> None:
    from playwright.sync_api import expect

    failed: list[str] = []
    # Every request the page makes must work (the browser's own favicon probe aside).
    page.on(
        "response",
        lambda r: failed.append(f"{r.status} {r.url}")
        if r.status >= 400 and not r.url.endswith("/favicon.ico")
        else None,
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("frontdesk")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code", exact=True).fill(totp_code_now(totp_key))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Today at a glance")).to_be_visible()

    warning = page.locator("#idle-warning")
    expect(warning).to_be_hidden()
    expect(warning).to_be_visible(timeout=(IDLE_SECONDS - WARN_SECONDS + 3) * 1000)
    expect(warning).to_contain_text("signed out in")
    page.get_by_role("button", name="Stay signed in").click()
    expect(warning).to_be_hidden()

    # Left alone this time: the page goes to sign-in, which says why.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(
        timeout=(IDLE_SECONDS + 5) * 1000
    )
    expect(page.locator("body")).to_contain_text("without activity")
    assert page.url.startswith(f"{live_server.url}/accounts/login/?next=")
    assert not failed, failed
