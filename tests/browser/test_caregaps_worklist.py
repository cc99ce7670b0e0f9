"""The care-gap recall worklist in a real browser, the way a care coordinator works it:
open a measure from the overview, filter by status, sort, page, export the CSV (after
the password and a fresh code again), and follow a row to the patient's page, where
the gap card says why the gap is open and what would close it.

The practice (tests.caregaps.test_worklist) is imported through the real FHIR ingest
and evaluated for CMS125. Every page is checked for console errors, CSP violations and
failed requests. Set CARELOOP_SCREENSHOTS=<dir> to keep a screenshot of each page.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_otp.oath import hotp

from careloop.security.models import Role
from tests.browser.test_patient_profile import Problems, _open_page
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.caregaps.test_worklist import NEVER, Practice, build_practice
from tests.patients.builders import PASSWORD, make_user
from tests.security.personas import totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STEP = 30
# The column header's link; its name may carry the sort arrow (CSS ::after) and case.
AGE = re.compile(r"^age\b", re.IGNORECASE)


def _code(key: bytes, step: int) -> str:
    return f"{hotp(key, step, digits=6):06d}"


@pytest.fixture
def chromium_ready() -> None:
    """Skip (or, under CI, fail) before the seconds spent importing the practice."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not installed")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed")


@pytest.fixture
def practice(chromium_ready: None, live_server: Any, tmp_path: Path) -> tuple[Practice, bytes]:
    """Built before the browser starts: Playwright's event loop in this thread would
    make the ORM refuse to run (SynchronousOnlyOperation)."""
    coordinator = make_user(
        Role.CARE_COORDINATOR, username="coord", first_name="Lee", last_name="Park"
    )
    key = bytes(totp_device(coordinator).bin_key)
    return build_practice(tmp_path / "fhir", coordinator=coordinator), key


@pytest.fixture
def browser(settings: Any, practice: tuple[Practice, bytes]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # The live server speaks plain HTTP; Secure cookies would never come back over it.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _names(page: Any) -> list[str]:
    cells: list[str] = page.locator(".worklist-table tbody td.name-cell").all_inner_texts()
    return [cell.strip() for cell in cells]


def test_coordinator_filters_sorts_pages_exports_and_opens_a_patient_from_the_worklist(
    live_server: Any, browser: Any, practice: tuple[Practice, bytes]
) -> None:
    from playwright.sync_api import expect

    data, key = practice
    base = live_server.url
    problems = Problems()
    page = _open_page(browser, problems)

    # Sign in: password, then the code of the current time step.
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill("coord")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    signed_in_step = int(time.time()) // STEP
    page.get_by_label("Code", exact=True).fill(_code(key, signed_in_step))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Today at a glance")).to_be_visible()

    # 1. The overview, from the main navigation; CMS125's counts; open its worklist.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Care gaps").click()
    expect(page.get_by_role("heading", name="Care gaps", level=1)).to_be_visible()
    row = page.locator('tr[data-measure="CMS125"]')
    expect(row).to_contain_text(str(NEVER))
    _shot(page, "caregaps-01-overview")
    row.get_by_role("link", name="Breast Cancer Screening").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Breast Cancer Screening")
    expect(page.locator(".results-meta")).to_contain_text("of 30 patients")

    # 2. Filter by status: the overdue ones, 27 over two pages.
    page.get_by_label("Overdue").check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator(".results-meta")).to_contain_text("Showing 1–25 of 27 patients")
    expect(page.locator(".worklist-table tbody tr")).to_have_count(25)
    statuses = page.locator(".worklist-table tbody tr").evaluate_all(
        "rows => [...new Set(rows.map(r => r.dataset.status))]"
    )
    assert statuses == ["overdue"]
    _shot(page, "caregaps-02-overdue")

    # 3. Sort by age: youngest first, then (a second click) oldest first.
    page.get_by_role("link", name=AGE).click()
    expect(page.locator(".worklist-table tbody tr").first).to_contain_text("Rowe26")
    page.get_by_role("link", name=AGE).click()
    expect(page.locator(".worklist-table tbody tr").first).to_contain_text("Rowe00")
    expect(page.get_by_role("columnheader", name=AGE)).to_have_attribute("aria-sort", "descending")
    assert "sort=-age" in page.url and "status=overdue" in page.url

    # 4. The next page keeps the filter and the order: the two youngest.
    page.get_by_role("link", name="Next →").click()
    expect(page.locator(".results-meta")).to_contain_text("Showing 26–27 of 27 patients")
    assert _names(page) == ["Rowe25, Never25", "Rowe26, Never26"]
    _shot(page, "caregaps-03-page-2")

    # 5. Export: the password and a fresh code again, then the file with every row.
    page.get_by_role("link", name="Export CSV (27)").click()
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    # A code is single use: the one after the sign-in's (the server accepts one step ahead).
    page.get_by_label("Code", exact=True).fill(
        _code(key, max(signed_in_step + 1, int(time.time()) // STEP))
    )
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Continue").click()
    download = download_info.value
    assert download.suggested_filename.startswith("worklist-CMS125-")
    text = Path(download.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == NEVER
    assert {row["status"] for row in rows} == {"overdue"}
    assert rows[0]["family_name"] == "Rowe00"  # the worklist's order, oldest first

    # 6. Follow a row to the patient's page: the gap card.
    page.goto(f"{base}/caregaps/CMS125/?status=overdue&sort=-age")
    page.get_by_role("link", name="Rowe00, Never00").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Never00 Rowe00")
    assert page.url.endswith(f"/patients/{data.ids['never00']}/")
    card = page.locator('.gap-card[data-measure="CMS125"]')
    expect(card).to_contain_text("Breast Cancer Screening")
    expect(card).to_contain_text("Overdue")
    expect(card).to_contain_text("No screening mammogram in the last 27 months")
    expect(card).to_contain_text("A screening mammogram (every 2 years)")
    _shot(page, "caregaps-04-gap-card")

    # Phone width: the worklist scrolls inside its table, the page does not.
    page.goto(f"{base}/caregaps/CMS125/")
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    wide = page.evaluate(
        "[...document.querySelectorAll('main *')].filter(e => !e.closest('.table-scroll'))"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth)"
        ".map(e => e.tagName + '.' + e.className).slice(0, 5)"
    )
    assert overflow <= 0, f"the worklist is {overflow}px wider than a phone screen: {wide}"
    page.context.close()

    assert problems.csp_violations == []
    assert problems.console_errors == []
    assert problems.failed_requests == []
