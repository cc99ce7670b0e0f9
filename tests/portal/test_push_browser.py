"""In a real browser (Debian's Chromium): a patient turns on notifications for this
browser on the preference page, sees the browser listed, and turns them off again.

The portal's service worker really registers (scope /portal/) and the page's script
really asks for permission, subscribes and posts. Only the browser's push service is
stood in for: Chromium subscribes through Google's servers, which this machine cannot
reach, so `PushManager.subscribe` answers with a subscription of the loopback push
service (tests/portal/push_service.py), after checking it was given the practice's
VAPID key. Pages log no console error and break no Content-Security-Policy rule.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest

from careloop.core import clock
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount, PushSubscription, RevokeReason
from careloop.security.models import Role
from tests.browser.test_staff_shell import CHROMIUM, CHROMIUM_ARGS, _missing, _shot
from tests.patients.builders import PASSWORD, add_contact, make_patient, make_user
from tests.portal.push_service import Browser, PushService

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "rosa.delgado@example.org"

# Stands in for the browser's push service; everything else on the page is real.
FAKE_PUSH_MANAGER = """
(() => {
  const subscription = %s;
  const made = () => ({
    endpoint: subscription.endpoint,
    toJSON: () => subscription,
    unsubscribe: async () => { localStorage.removeItem("push-made"); return true; },
  });
  PushManager.prototype.getSubscription = async function () {
    return localStorage.getItem("push-made") ? made() : null;
  };
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    localStorage.setItem("push-key", btoa(String.fromCharCode(...key)));
    localStorage.setItem("push-made", "1");
    return made();
  };
})();
"""


@pytest.fixture
def rosa(live_server: Any) -> Patient:
    """Built before the browser starts (Playwright's loop makes the ORM refuse)."""
    patient = make_patient("Rosa", "Delgado", datetime.date(1961, 4, 2))
    add_contact(patient, "email", EMAIL, verified=True, can_email=True)
    user = make_user(Role.PATIENT, username="rosa-portal")
    PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())
    return patient


@pytest.fixture
def browser(settings: Any, rosa: Patient) -> Iterator[Any]:
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


def test_a_patient_turns_notifications_on_and_off_in_this_browser(
    browser: Any,
    live_server: Any,
    rosa: Patient,
    push_service: PushService,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    subscription = push_service.subscribe(Browser())
    base = live_server.url
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.grant_permissions(["notifications"], origin=base)
    context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(subscription))
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(base) else route.abort(),
    )
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{base}/portal/signin/")
    page.get_by_label("E-mail or mobile number").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Portal").get_by_role(
        "link", name="Communication preferences"
    ).click()

    push = page.get_by_role("region", name="Notifications in this browser")
    expect(push).to_contain_text("Notifications are off in this browser.")
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{base}/portal/"
    push.get_by_role("button", name="Turn on notifications").click()
    expect(push).to_contain_text("Notifications are on in this browser.")
    # No push consent on file yet: the page says what else is needed.
    expect(push).to_contain_text("Also tick “Push notifications” above and save")
    _shot(page, "portal-push-on")

    key = base64.b64decode(page.evaluate("localStorage.getItem('push-key')"))
    expected = base64.urlsafe_b64decode(settings.VAPID_PUBLIC_KEY + "==")
    assert key == expected, "the browser subscribed with the practice's VAPID key"
    [stored] = PushSubscription.objects.filter(patient=rosa, revoked_at__isnull=True)
    assert stored.endpoint == subscription["endpoint"]
    assert stored.user_agent.startswith("chrome/")

    page.reload()
    expect(push).to_contain_text("Notifications are on in this browser.")
    expect(push.get_by_role("listitem")).to_have_count(1)
    push.get_by_role("button", name="Turn off notifications").click()
    expect(push).to_contain_text("Notifications are off in this browser.")
    stored.refresh_from_db()
    assert stored.revoke_reason == RevokeReason.UNSUBSCRIBED
    page.reload()
    expect(push.get_by_role("listitem")).to_have_count(0)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the preference page is {width}px wide on a 390px screen"
    assert problems == []
    context.close()
