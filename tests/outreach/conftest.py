"""Outreach fixtures: a reachable patient at local noon, vendors with BAAs, and real
loopback providers (an SMTP server with and without STARTTLS, a Twilio-like API)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from careloop.consent.ledger import consent_record
from careloop.consent.models import (
    BaaStatus,
    CaptureMethod,
    ConsentKind,
    ConsentStatus,
    Vendor,
    VendorKind,
)
from careloop.core import clock
from careloop.patients.models import Patient
from tests.outreach.fake_twilio import FakeTwilio
from tests.outreach.smtp_server import Inbox, self_signed, start_smtp
from tests.patients.builders import add_contact, make_patient

# Noon in New York, a Wednesday: outside quiet hours for the patients below.
NOON = datetime.datetime(2026, 6, 10, 16, 0, tzinfo=datetime.UTC)
MOBILE = "+16175550101"
EMAIL = "rosa.delgado@example.org"


@pytest.fixture(autouse=True)
def _noon() -> Iterator[None]:
    with clock.frozen(NOON):
        yield


def advance(seconds: float) -> AbstractContextManager[None]:
    """Move the frozen clock on (use as a context manager)."""
    return clock.frozen(clock.now() + datetime.timedelta(seconds=seconds))


def reachable_patient(*, mobile: str = MOBILE, sms_consent: bool = True) -> Patient:
    """A New York patient with a verified mobile and e-mail; SMS consent on file."""
    patient = make_patient(
        "Rosa", "Delgado", datetime.date(1961, 4, 2), time_zone="America/New_York"
    )
    add_contact(patient, "phone", mobile, verified=True, can_sms=True, can_voice=True)
    add_contact(patient, "email", EMAIL, verified=True, can_email=True)
    if sms_consent:
        consent_record(
            patient=patient,
            kind=ConsentKind.SMS,
            status=ConsentStatus.GRANTED,
            capture_method=CaptureMethod.PORTAL_ESIGNATURE,
            captured_at=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        )
    return patient


def vendor_with_baa(name: str, kind: VendorKind) -> Vendor:
    return Vendor.objects.create(
        name=name,
        kind=kind,
        baa_status=BaaStatus.ACTIVE,
        baa_signed_on=datetime.date(2025, 1, 1),
        updated_at=clock.now(),
    )


@pytest.fixture
def vendors(db: Any) -> None:
    vendor_with_baa("Twilio", VendorKind.SMS)
    vendor_with_baa("E-mail relay", VendorKind.EMAIL)


@pytest.fixture
def provider(settings: Any) -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    settings.SMS_BASE_URL = fake.base_url
    settings.SMS_ACCOUNT_SID = fake.account_sid
    settings.SMS_AUTH_TOKEN = fake.auth_token
    settings.SMS_MESSAGING_SERVICE_SID = "MG" + "1" * 32
    settings.SMS_WEBHOOK_BASE_URL = ""
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def smtp_tls(settings: Any, tmp_path: Path) -> Iterator[Inbox]:
    cert, key = self_signed(tmp_path)
    controller, inbox = start_smtp(tls=(cert, key))
    settings.SMTP_HOST, settings.SMTP_PORT = "127.0.0.1", controller.port
    settings.SMTP_CA_FILE = str(cert)
    settings.SMTP_FROM = "care@riverbend.example"
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp_plain(settings: Any) -> Iterator[Inbox]:
    controller, inbox = start_smtp(tls=None)
    settings.SMTP_HOST, settings.SMTP_PORT = "127.0.0.1", controller.port
    try:
        yield inbox
    finally:
        controller.stop()
