"""A message whose fate is unknown after a crash is reconciled with the provider before
any resend (careloop.outreach.dispatch). The loopback provider here behaves like Twilio
itself: it ignores the idempotency key, so a resend would be a second text."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from careloop.consent.ledger import consent_record
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ConsentKind,
    ConsentStatus,
    ContentClass,
    Purpose,
)
from careloop.core import clock
from careloop.outreach.channels import channel_for
from careloop.outreach.dispatch import dispatch_due, message_send, messages_claim
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.patients.models import Patient
from tests.outreach.conftest import advance, reachable_patient
from tests.outreach.fake_twilio import FakeTwilio
from tests.outreach.smtp_server import Inbox
from tests.outreach.test_sms_dispatch import sms

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vendors")]


@pytest.fixture
def twilio(provider: FakeTwilio) -> FakeTwilio:
    provider.honour_idempotency_key = False
    return provider


def crash_after_claim(message: Message) -> None:
    """A worker claims the message and dies before it records anything."""
    [claim] = messages_claim(owner="worker-that-died", limit=10)
    assert claim.message_id == message.pk and not claim.in_doubt


def revoke_sms(patient: Patient) -> None:
    consent_record(
        patient=patient,
        kind=ConsentKind.SMS,
        status=ConsentStatus.REVOKED,
        capture_method=CaptureMethod.VERBAL,
    )


def test_a_message_the_provider_already_has_is_settled_from_its_record_not_resent(
    twilio: FakeTwilio, settings: Any
) -> None:
    message = sms(reachable_patient())
    crash_after_claim(message)
    sid = channel_for("sms").send(Message.objects.get(pk=message.pk))  # accepted, unrecorded

    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        [claim] = messages_claim(owner="successor", limit=10)
        assert claim.in_doubt, "taken over from an expired lease"
        assert message_send(claim) == "reconciled"

    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == (MessageStatus.SENT, sid)
    assert message.status_detail == "reconciled with the provider"
    assert len(twilio.delivered) == 1, "no second text"


def test_the_providers_delivery_report_missed_during_the_crash_is_taken_from_its_record(
    twilio: FakeTwilio, settings: Any
) -> None:
    message = sms(reachable_patient())
    crash_after_claim(message)
    sid = channel_for("sms").send(Message.objects.get(pk=message.pk))
    for record in twilio.messages:
        record["status"] = "delivered"
    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        assert dispatch_due() == {"reconciled": 1}
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == (MessageStatus.DELIVERED, sid)


def test_a_message_that_never_reached_the_provider_is_sent_once_after_the_crash(
    twilio: FakeTwilio, settings: Any
) -> None:
    message = sms(reachable_patient())
    crash_after_claim(message)
    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        assert dispatch_due() == {"sent": 1}
    assert twilio.lookups == 1
    assert len(twilio.delivered) == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.send_reason == "allowed"


def test_consent_revoked_while_a_message_was_in_doubt_withholds_it(
    twilio: FakeTwilio, settings: Any
) -> None:
    patient = reachable_patient()
    message = sms(patient)
    crash_after_claim(message)
    revoke_sms(patient)
    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        assert dispatch_due() == {"withheld": 1}
    assert twilio.delivered == []
    message.refresh_from_db()
    assert (message.status, message.send_reason) == (MessageStatus.WITHHELD, "opted_out")


def test_a_provider_that_cannot_be_asked_keeps_the_message_in_doubt_not_resent(
    twilio: FakeTwilio, settings: Any
) -> None:
    message = sms(reachable_patient())
    crash_after_claim(message)
    sid = channel_for("sms").send(Message.objects.get(pk=message.pk))
    twilio.fail_next(503)  # the lookup
    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        assert dispatch_due() == {"in_doubt": 1}
        message.refresh_from_db()
        assert message.status == MessageStatus.SENDING, "still in doubt, under a lease"
        assert message.status_detail == "sms lookup 503"
    assert message.lease_until is not None
    with clock.frozen(message.lease_until + datetime.timedelta(seconds=1)):
        assert dispatch_due() == {"reconciled": 1}
    message.refresh_from_db()
    assert message.provider_message_id == sid
    assert len(twilio.delivered) == 1


def test_an_answer_that_never_came_leaves_the_message_in_doubt_until_reconciled(
    twilio: FakeTwilio, settings: Any
) -> None:
    settings.SMS_TIMEOUT_SECONDS = 1
    message = sms(reachable_patient())
    hold = twilio.hold_next(accept=True)
    try:
        assert dispatch_due() == {"in_doubt": 1}, "a read timeout after the request went out"
    finally:
        hold.release()
    message.refresh_from_db()
    assert (message.status, message.status_detail) == (MessageStatus.SENDING, "sms ReadTimeout")
    assert message.lease_until is not None
    with clock.frozen(message.lease_until + datetime.timedelta(seconds=1)):
        assert dispatch_due() == {"reconciled": 1}
    assert len(twilio.delivered) == 1


def test_a_twin_with_the_same_number_and_text_does_not_claim_the_others_record(
    twilio: FakeTwilio, settings: Any
) -> None:
    patient = reachable_patient()
    first = sms(patient)
    assert dispatch_due() == {"sent": 1}
    twin = sms(patient)
    crash_after_claim(twin)
    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        assert dispatch_due() == {"sent": 1}, "the provider's only record is the first's"
    first.refresh_from_db()
    twin.refresh_from_db()
    assert twin.provider_message_id not in ("", first.provider_message_id)
    assert len(twilio.delivered) == 2


def test_an_email_in_doubt_is_resent_with_the_same_message_id(
    smtp_tls: Inbox, settings: Any
) -> None:
    message = message_enqueue(
        patient=reachable_patient(),
        channel=Channel.EMAIL,
        purpose=Purpose.APPOINTMENT,
        content_class=ContentClass.LOGISTICS,
        template_id="visit-reminder",
        template_version=1,
        rendered=Rendered(subject="Your visit", body="Thursday at 10:30."),
    )
    crash_after_claim(message)
    channel_for("email").send(Message.objects.get(pk=message.pk))  # relayed, unrecorded
    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        assert dispatch_due() == {"sent": 1}
    # SMTP cannot be asked what it has: the resend arrives, recognisably the same mail,
    # for a relay or mailbox that suppresses duplicates by Message-ID.
    ids = [arrived.message["Message-ID"] for arrived in smtp_tls.arrived]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert message.idempotency_key in ids[0]
