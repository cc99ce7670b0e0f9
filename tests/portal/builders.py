"""Portal test builders: channel preferences, push consent, a subscribed browser."""

from __future__ import annotations

import datetime
from typing import Any

from careloop.consent.ledger import consent_record
from careloop.consent.models import (
    CaptureMethod,
    CommunicationPreference,
    ConsentKind,
    ConsentStatus,
)
from careloop.core.clock import now
from careloop.patients.models import Patient
from careloop.portal.models import PushSubscription
from careloop.portal.push_subscriptions import push_subscribe
from tests.portal.push_service import Browser, PushService

CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)


def prefer(patient: Patient, *channels: str) -> None:
    """The patient's channels in their order of preference."""
    CommunicationPreference.objects.update_or_create(
        patient=patient, defaults={"channel_order": list(channels), "updated_at": now()}
    )


def grant(patient: Patient, kind: ConsentKind) -> None:
    consent_record(
        patient=patient,
        kind=kind,
        status=ConsentStatus.GRANTED,
        capture_method=CaptureMethod.PORTAL_ESIGNATURE,
        captured_at=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
    )


def subscribed_browser(
    patient: Patient, service: PushService, *, consent: bool = True
) -> tuple[Browser, dict[str, Any], PushSubscription]:
    """A browser of the patient's that allowed notifications and subscribed."""
    if consent:
        grant(patient, ConsentKind.PUSH)
    browser = Browser()
    subscription = service.subscribe(browser)
    stored = push_subscribe(patient=patient, subscription=subscription, user_agent=CHROME_ANDROID)
    return browser, subscription, stored
