"""The BAA registry: PHI goes only to a vendor with a BAA in force."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from careloop.consent.baa import NoActiveBaa, VendorError, baa_require
from careloop.consent.models import Vendor
from careloop.security.models import AuditEvent

pytestmark = pytest.mark.django_db

AT = datetime.datetime(2026, 11, 1, 12, tzinfo=datetime.UTC)


def vendor(*args: str) -> str:
    out = io.StringIO()
    call_command("vendor", *args, stdout=out)
    return out.getvalue()


def test_an_active_baa_lets_phi_go_to_the_vendor() -> None:
    vendor("add", "Twilio", "--kind", "sms")
    vendor("set-baa", "Twilio", "--status", "active", "--signed", "2026-01-01")
    assert baa_require(vendor_name="Twilio", at=AT).name == "Twilio"
    assert AuditEvent.objects.filter(action="vendor.change").count() == 2
    assert "Twilio\tsms\tactive\t2026-01-01" in vendor("list")


def test_an_expired_baa_refuses_and_says_why() -> None:
    vendor("add", "Mailer", "--kind", "email")
    dates = ["--signed", "2025-01-01", "--expires", "2026-10-31"]
    vendor("set-baa", "Mailer", "--status", "active", *dates)
    refusal = "No active BAA on file for Mailer: PHI may not be sent to it"
    with pytest.raises(NoActiveBaa, match=refusal):
        baa_require(vendor_name="Mailer", at=AT)


def test_a_baa_marked_expired_or_none_refuses() -> None:
    vendor("add", "Clinic EHR", "--kind", "ehr")
    with pytest.raises(NoActiveBaa, match="status none"):
        baa_require(vendor_name="Clinic EHR", at=AT)
    vendor("set-baa", "Clinic EHR", "--status", "expired", "--signed", "2020-01-01")
    with pytest.raises(NoActiveBaa, match="status expired"):
        baa_require(vendor_name="Clinic EHR", at=AT)


def test_an_unregistered_vendor_refuses() -> None:
    with pytest.raises(NoActiveBaa, match="No active BAA on file for Nobody"):
        baa_require(vendor_name="Nobody", at=AT)


def test_an_active_baa_needs_a_signing_date() -> None:
    vendor("add", "Tele", "--kind", "telehealth")
    with pytest.raises(CommandError, match="needs the date"):
        vendor("set-baa", "Tele", "--status", "active")
    assert Vendor.objects.get().baa_status == "none"


def test_a_vendor_is_registered_once() -> None:
    vendor("add", "Twilio", "--kind", "sms")
    with pytest.raises(CommandError, match="already registered"):
        vendor("add", "Twilio", "--kind", "sms")
    assert VendorError  # the service's error the command turns into one line
