"""Web Push subscriptions: what a browser hands the portal, checked and stored encrypted."""

from __future__ import annotations

import datetime
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import connection

from careloop.consent.decisions import may_contact
from careloop.consent.models import ConsentKind
from careloop.portal.models import PushSubscription
from careloop.portal.push_subscriptions import (
    PushNotConfigured,
    PushSubscriptionInvalid,
    push_subscribe,
    push_unsubscribe,
    user_agent_code,
)
from careloop.portal.vapid import vapid_private_from_seed, vapid_public_key
from careloop.security.models import AuditEvent
from tests.patients.builders import make_patient
from tests.portal.builders import CHROME_ANDROID, grant, subscribed_browser
from tests.portal.push_service import Browser, PushService, b64url

pytestmark = pytest.mark.django_db

FCM = "https://fcm.googleapis.com/fcm/send/cX9-Lh2Wq3k:APA91bH1secretToken"


def patient(given: str = "Rosa") -> Any:
    return make_patient(given, "Delgado", datetime.date(1961, 4, 2), time_zone="America/New_York")


def subscription(endpoint: str = FCM, **keys: str) -> dict[str, Any]:
    return {"endpoint": endpoint, "expirationTime": None, "keys": {**Browser().keys(), **keys}}


def test_a_subscription_is_stored_encrypted_with_a_coded_user_agent(
    push_service: PushService,
) -> None:
    rosa = patient()
    browser, sent, stored = subscribed_browser(rosa, push_service)

    stored.refresh_from_db()
    assert stored.endpoint == sent["endpoint"]
    assert (stored.p256dh, stored.auth) == (browser.keys()["p256dh"], browser.keys()["auth"])
    assert stored.user_agent == "chrome/android"
    token = sent["endpoint"].rsplit("/", 1)[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT endpoint, p256dh, auth, user_agent FROM portal_pushsubscription")
        [(endpoint, p256dh, auth, agent)] = cursor.fetchall()
    assert token.encode() not in bytes(endpoint)
    assert browser.keys()["p256dh"].encode() not in bytes(p256dh)
    assert browser.keys()["auth"].encode() not in bytes(auth)
    assert "Pixel" not in agent, "never the raw User-Agent"
    event = AuditEvent.objects.get(action="preferences.update", resource_type="push_subscription")
    assert (event.patient_id, event.fields) == (rosa.pk, ["subscribed"])


def test_the_same_browser_subscribing_again_keeps_its_one_subscription(
    push_service: PushService,
) -> None:
    rosa = patient()
    _, sent, first = subscribed_browser(rosa, push_service)

    again = push_subscribe(patient=rosa, subscription=sent, user_agent=CHROME_ANDROID)

    assert again.pk == first.pk
    assert PushSubscription.objects.count() == 1


def test_a_browser_subscribing_for_another_patient_replaces_the_first_subscription(
    push_service: PushService,
) -> None:
    rosa, ana = patient(), patient("Ana")
    _, sent, first = subscribed_browser(rosa, push_service)

    second = push_subscribe(patient=ana, subscription=sent, user_agent="")

    first.refresh_from_db()
    assert (first.revoke_reason, first.revoked_at is not None) == ("replaced", True)
    assert (second.patient_id, second.revoked_at, second.user_agent) == (
        ana.pk,
        None,
        "other/other",
    )


def test_push_is_allowed_only_with_a_live_subscription_and_push_consent(
    push_service: PushService,
) -> None:
    rosa = patient()
    noon = datetime.datetime(2026, 6, 10, 16, 0, tzinfo=datetime.UTC)

    def decision() -> tuple[bool, str, str]:
        d = may_contact(rosa, "push", "care_reminder", "generic", noon)
        return d.allowed, str(d.reason), d.detail

    assert decision() == (False, "no_verified_address", "no push subscription")
    _, sent, _ = subscribed_browser(rosa, push_service, consent=False)
    assert decision()[:2] == (False, "no_consent")
    grant(rosa, ConsentKind.PUSH)
    assert decision()[:2] == (True, "allowed")

    assert push_unsubscribe(patient=rosa, endpoint=sent["endpoint"]) is True

    assert decision() == (False, "no_verified_address", "no push subscription")
    assert PushSubscription.objects.get().revoke_reason == "unsubscribed"
    assert push_unsubscribe(patient=rosa, endpoint=sent["endpoint"]) is False


def test_a_push_service_endpoint_with_browser_keys_is_accepted() -> None:
    stored = push_subscribe(patient=patient(), subscription=subscription())
    assert stored.endpoint == FCM


def _off_curve_point() -> str:
    while True:
        candidate = b"\x04" + os.urandom(64)
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), candidate)
        except ValueError:
            return b64url(candidate)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"endpoint": "http://fcm.googleapis.com/fcm/send/abc"}, "must be https"),
        ({"endpoint": "http://127.0.0.1:9/push/abc"}, "must be https"),
        ({"endpoint": "https://169.254.169.254/latest/meta-data"}, "not a known push service"),
        ({"endpoint": "https://fcm.googleapis.com.evil.example/x"}, "not a known push service"),
        ({"endpoint": "https://user:pw@fcm.googleapis.com/fcm/send/x"}, "no credentials"),
        ({"endpoint": "https://fcm.googleapis.com/" + "a" * 2100}, "at most 2048"),
        ({"endpoint": 42}, "at most 2048"),
        ({"keys": None}, "keys must be an object"),
        ({"keys": {"p256dh": b64url(b"\x04" + b"1" * 31), "auth": b64url(b"a" * 16)}}, "p256dh"),
        ({"keys": {"auth": b64url(b"a" * 16)}}, "p256dh must be 65 bytes"),
        ({"keys": {"p256dh": "not base64!", "auth": b64url(b"a" * 16)}}, "p256dh must be"),
        ({"keys": {"p256dh": _off_curve_point(), "auth": b64url(b"a" * 16)}}, "not a P-256"),
        ({"keys": {**Browser().keys(), "auth": b64url(b"a" * 8)}}, "auth must be 16 bytes"),
    ],
)
def test_a_subscription_that_cannot_be_used_is_refused_without_echoing_it(
    changes: dict[str, Any], why: str
) -> None:
    body = {**subscription(), **changes}
    with pytest.raises(PushSubscriptionInvalid, match=why) as refused:
        push_subscribe(patient=patient(), subscription=body)
    assert "evil" not in str(refused.value) and "pw" not in str(refused.value)
    assert PushSubscription.objects.count() == 0


def test_loopback_push_services_are_accepted_only_where_development_allows(settings: Any) -> None:
    settings.PUSH_ALLOW_LOOPBACK = True
    stored = push_subscribe(
        patient=patient(), subscription=subscription("http://127.0.0.1:8080/push/abc")
    )
    assert stored.endpoint.startswith("http://127.0.0.1")


def test_without_a_vapid_key_no_browser_can_subscribe(settings: Any) -> None:
    settings.VAPID_PRIVATE_KEY = ""
    with pytest.raises(PushNotConfigured):
        push_subscribe(patient=patient(), subscription=subscription())


def test_the_embedded_vapid_key_is_a_local_secret_and_settings_give_its_public_key() -> None:
    assert (settings.VAR_DIR / "keys" / "vapid_seed").is_file()
    assert vapid_public_key(settings.VAPID_PRIVATE_KEY) == settings.VAPID_PUBLIC_KEY
    # Every seed gives a valid key, the same each time; the top of the range too.
    for seed in ("00" * 32, "ff" * 32, os.urandom(32).hex()):
        key = vapid_private_from_seed(seed)
        assert key == vapid_private_from_seed(seed)
        assert len(vapid_public_key(key)) == 87  # 65 bytes, base64url


@pytest.mark.parametrize(
    ("agent", "code"),
    [
        (CHROME_ANDROID, "chrome/android"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "firefox/linux"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "safari/ios",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "edge/windows",
        ),
        ("", "other/other"),
    ],
)
def test_the_user_agent_is_kept_as_browser_and_platform(agent: str, code: str) -> None:
    assert user_agent_code(agent) == code
