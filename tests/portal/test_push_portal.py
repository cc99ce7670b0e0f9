"""Web Push from the portal's preference page, over HTTP: the service worker served with
the portal as its scope, a browser's subscription turned on and off, the subscribed
browsers listed with a button to remove each, and bad or unauthorised requests refused
with a reason and nothing stored."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.test import Client

from careloop.consent.models import ConsentKind
from careloop.core import clock
from careloop.patients.models import PatientRelationship
from careloop.portal.models import PushSubscription, RevokeReason
from careloop.security.models import AuditEvent
from tests.patients.builders import make_patient
from tests.portal.builders import grant
from tests.portal.push_service import Browser, PushService
from tests.portal.test_consents import portal_patient

pytestmark = pytest.mark.django_db

CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)


def turn_on(client: Client, body: Any) -> Any:
    return client.post(
        "/portal/push/on/",
        body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
        secure=True,
        headers={"user-agent": CHROME_ANDROID},
    )


def turn_off(client: Client, endpoint: str) -> Any:
    return client.post(
        "/portal/push/off/",
        json.dumps({"endpoint": endpoint}),
        content_type="application/json",
        secure=True,
    )


def test_the_service_worker_is_served_with_the_portal_as_its_scope() -> None:
    response = Client().get("/portal/sw.js", secure=True)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/portal/"
    assert response["Cache-Control"] == "no-store", "a stale worker never lingers"
    assert b'addEventListener("push"' in response.content


def test_a_browser_turns_notifications_on_and_off(push_service: PushService) -> None:
    rosa, user, client = portal_patient("Rosa", "Delgado")
    browser = Browser()
    subscription = push_service.subscribe(browser)

    answer = turn_on(client, {"subscription": subscription})

    assert answer.status_code == 200
    assert answer.json() == {"status": "on", "consented": False}
    assert subscription["endpoint"] not in answer.content.decode()
    [stored] = PushSubscription.objects.filter(patient=rosa, revoked_at__isnull=True)
    assert stored.user_agent == "chrome/android"
    page = client.get("/portal/preferences/", secure=True).content.decode()
    assert "Chrome on Android" in page
    assert subscription["endpoint"] not in page
    assert AuditEvent.objects.filter(
        action="preferences.update", patient_id=rosa.pk, actor_id=str(user.pk)
    ).exists()

    # Once the push consent is on file too, the practice's push reaches this browser.
    grant(rosa, ConsentKind.PUSH)
    assert turn_on(client, {"subscription": subscription}).json()["consented"] is True
    assert PushSubscription.objects.filter(patient=rosa).count() == 1, "the same browser, once"

    off = turn_off(client, subscription["endpoint"])

    assert (off.status_code, off.json()) == (200, {"status": "off"})
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert stored.revoke_reason == RevokeReason.UNSUBSCRIBED
    assert (
        "Chrome on Android" not in client.get("/portal/preferences/", secure=True).content.decode()
    )


def test_a_lost_phone_is_removed_from_the_list_without_javascript(
    push_service: PushService,
) -> None:
    rosa, _user, client = portal_patient("Rosa", "Delgado")
    turn_on(client, {"subscription": push_service.subscribe(Browser())})
    stored = PushSubscription.objects.get(patient=rosa)

    response = client.post(f"/portal/push/{stored.pk}/remove/", secure=True)

    assert response.status_code == 302
    assert response["Location"] == "/portal/preferences/#push"
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    page = client.get("/portal/preferences/", secure=True).content.decode()
    assert "That browser will no longer get notifications." in page


def test_bad_subscriptions_are_refused_with_a_reason_and_nothing_stored(
    push_service: PushService,
) -> None:
    rosa, _user, client = portal_patient("Rosa", "Delgado")
    good = push_service.subscribe(Browser())
    internal = {**good, "endpoint": "https://10.0.0.5/push/abc"}
    short_key = {**good, "keys": {**good["keys"], "auth": "AAAA"}}

    for body in (
        "not json",
        {"nothing": 1},
        {"subscription": internal},
        {"subscription": short_key},
    ):
        answer = turn_on(client, body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]
        assert "10.0.0.5" not in answer.content.decode()
    assert turn_on(client, "x" * 10_000).status_code == 400
    assert turn_off(client, "").status_code == 400
    assert not PushSubscription.objects.filter(patient=rosa).exists()


def test_without_a_vapid_key_the_page_says_push_is_unavailable(settings: Any) -> None:
    settings.VAPID_PRIVATE_KEY = settings.VAPID_PUBLIC_KEY = ""
    _rosa, _user, client = portal_patient("Rosa", "Delgado")

    page = client.get("/portal/preferences/", secure=True).content.decode()
    answer = turn_on(client, {"subscription": {"endpoint": "https://fcm.googleapis.com/x"}})

    assert "Notifications are not available at this practice." in page
    assert "portal/push.js" not in page
    assert answer.status_code == 503
    assert answer.json()["error"] == "Notifications are not available at this practice."


def test_signed_out_and_other_patients_cannot_touch_a_subscription(
    push_service: PushService,
) -> None:
    rosa, _user, client = portal_patient("Rosa", "Delgado")
    turn_on(client, {"subscription": push_service.subscribe(Browser())})
    stored = PushSubscription.objects.get(patient=rosa)
    _ana, _other, stranger = portal_patient("Ana", "Alvarez")

    assert turn_on(Client(), {"subscription": push_service.subscribe(Browser())}).status_code == 302
    assert stranger.post(f"/portal/push/{stored.pk}/remove/", secure=True).status_code == 302
    assert turn_off(stranger, stored.endpoint).json() == {"status": "off"}
    stored.refresh_from_db()
    assert stored.revoked_at is None, "only the record's own account may turn it off"


def test_a_view_only_proxy_may_not_subscribe_for_the_child(push_service: PushService) -> None:
    ana, _user, client = portal_patient("Ana", "Alvarez")
    leo = make_patient("Leo", "Alvarez", datetime.date(2018, 4, 5))
    PatientRelationship.objects.create(
        patient=leo,
        related_patient=ana,
        code="parent",
        period_start=datetime.date(2025, 1, 1),
        created_at=clock.now(),
        may_view_record=True,
    )
    assert client.post("/portal/switch/", {"patient": str(leo.pk)}, secure=True).status_code == 302

    answer = turn_on(client, {"subscription": push_service.subscribe(Browser())})

    assert answer.status_code == 403
    assert not PushSubscription.objects.exists()
    page = client.get("/portal/preferences/", secure=True).content.decode()
    assert "portal/push.js" not in page
