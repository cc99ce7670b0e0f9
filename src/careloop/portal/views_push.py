"""Web Push in the portal: the service worker, and a browser turning notifications on
and off for the record it acts for.

The preference page's script (static/portal/push.js) registers the service worker at
/portal/sw.js, asks the browser for a subscription with the practice's VAPID public
key, and POSTs the subscription's JSON here; turning off POSTs the endpoint. Both
answer JSON (`{"status": ...}` or `{"error": ...}`) and never echo the endpoint: it is
a capability URL and class I. The page also lists the record's subscribed browsers
with a plain form button each, so a lost phone can be removed without JavaScript.

Subscribing is a preference change: it needs the `sign_consents` power over the
record, as the preference form does. It does not grant the push consent; the page says
so when the consent is missing, and the push channel checks it before every send.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from careloop.consent.ledger import consent_current
from careloop.consent.models import ConsentKind, ConsentStatus
from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.portal.models import PortalAccount, PushSubscription
from careloop.portal.proxy import Grant, Power, portal_acting
from careloop.portal.push_subscriptions import (
    PushNotConfigured,
    PushSubscriptionInvalid,
    push_subscribe,
    push_unsubscribe,
)
from careloop.portal.selectors import push_subscriptions_live
from careloop.portal.web import portal_page, portal_public

# A subscription's JSON is well under 1 KiB; anything much larger is not one.
MAX_BODY_BYTES = 8 * 1024
SERVICE_WORKER = "portal/sw.js"


@require_GET
@portal_public
def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker, served from /portal/ so that its scope is the portal."""
    found = finders.find(SERVICE_WORKER)
    source = Path(str(found)).read_bytes() if found else b""
    response = HttpResponse(source, content_type="text/javascript; charset=utf-8")
    # No cache headers of its own: like every page, it is sent `no-store`, so browsers
    # fetch it afresh on each visit and a stale worker never lingers.
    response.headers["Service-Worker-Allowed"] = "/portal/"
    return response


BROWSER_NAMES = {
    "chrome": "Chrome",
    "edge": "Edge",
    "firefox": "Firefox",
    "opera": "Opera",
    "safari": "Safari",
    "samsung": "Samsung Internet",
}
PLATFORM_NAMES = {
    "android": "Android",
    "chromeos": "ChromeOS",
    "ios": "iOS",
    "linux": "Linux",
    "macos": "macOS",
    "windows": "Windows",
}


def device_label(code: str) -> str:
    """ "chrome/android" as a person says it: "Chrome on Android"."""
    browser, _slash, platform = code.partition("/")
    name = BROWSER_NAMES.get(browser, _("A browser"))
    where = PLATFORM_NAMES.get(platform)
    return (
        _("%(browser)s on %(platform)s") % {"browser": name, "platform": where} if where else name
    )


def push_context(grant: Grant) -> dict[str, Any]:
    """What the preference page shows about push: the key a browser subscribes with
    (empty when push is off here) and the record's subscribed browsers."""
    devices = [
        {"id": row.id, "label": device_label(row.user_agent), "since": row.created_at}
        for row in push_subscriptions_live(patient_id=grant.patient.pk)
    ]
    return {"push_key": settings.VAPID_PUBLIC_KEY, "push_devices": devices}


def _refused(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _body(request: HttpRequest) -> dict[str, Any] | None:
    if len(request.body) > MAX_BODY_BYTES:
        return None
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _grant(request: HttpRequest, account: PortalAccount) -> Grant | None:
    try:
        return portal_acting(request=request, account=account, power=Power.SIGN_CONSENTS)
    except NotFound:
        return None


@never_cache
@require_POST
@portal_page
def push_on(request: HttpRequest, account: PortalAccount) -> JsonResponse:
    """Store this browser's subscription for the record the portal acts for."""
    grant = _grant(request, account)
    if grant is None:
        return _refused(_("You may not change this record's preferences."), 403)
    data = _body(request)
    subscription = data.get("subscription") if data is not None else None
    if not isinstance(subscription, dict):
        return _refused(_("The browser did not send a notification subscription."), 400)
    try:
        push_subscribe(
            patient=grant.patient,
            subscription=subscription,
            user_agent=request.headers.get("User-Agent", ""),
            actor=account.user,
        )
    except PushNotConfigured:
        return _refused(_("Notifications are not available at this practice."), 503)
    except PushSubscriptionInvalid:
        return _refused(_("This browser's notification service cannot be used."), 400)
    consented = (
        consent_current(patient=grant.patient, kind=ConsentKind.PUSH, at=now())
        == ConsentStatus.GRANTED
    )
    return JsonResponse({"status": "on", "consented": consented})


@never_cache
@require_POST
@portal_page
def push_off(request: HttpRequest, account: PortalAccount) -> JsonResponse:
    """Forget this browser's subscription (the script has unsubscribed it)."""
    grant = _grant(request, account)
    if grant is None:
        return _refused(_("You may not change this record's preferences."), 403)
    data = _body(request)
    endpoint = data.get("endpoint") if data is not None else None
    if not isinstance(endpoint, str) or not endpoint:
        return _refused(_("The browser did not say which subscription to turn off."), 400)
    push_unsubscribe(patient=grant.patient, endpoint=endpoint, actor=account.user)
    return JsonResponse({"status": "off"})


@never_cache
@require_POST
@portal_page
def push_device_remove(
    request: HttpRequest, account: PortalAccount, subscription_id: uuid.UUID
) -> HttpResponse:
    """The preference page's "Remove" button for one subscribed browser."""
    grant = _grant(request, account)
    if grant is None:
        raise NotFound("no such patient")
    found = PushSubscription.objects.filter(
        pk=subscription_id, patient=grant.patient, revoked_at__isnull=True
    ).first()
    if found is not None:
        push_unsubscribe(patient=grant.patient, endpoint=found.endpoint, actor=account.user)
        messages.success(request, _("That browser will no longer get notifications."))
    return HttpResponseRedirect(reverse("portal:preferences") + "#push")
