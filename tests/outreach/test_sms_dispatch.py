"""SMS through the outbox and the dispatcher to a loopback Twilio-compatible provider."""

from __future__ import annotations

import datetime
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from careloop.consent.ledger import consent_record
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ConsentKind,
    ConsentStatus,
    ContactEvent,
    ContentClass,
    Purpose,
    Vendor,
)
from careloop.core import clock
from careloop.outreach.channels import channel_for
from careloop.outreach.dispatch import dispatch_due, message_send, messages_claim
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.patients.models import Patient, TimelineEvent
from careloop.security.models import AuditEvent
from tests.outreach.conftest import MOBILE, advance, reachable_patient
from tests.outreach.fake_twilio import FakeTwilio

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vendors")]

BODY = "Rosa, your visit with Dr. Chen is Thu 10:30 at Riverbend Main. Reply C to confirm."


def sms(patient: Patient, purpose: Purpose = Purpose.APPOINTMENT, **extra: Any) -> Message:
    return message_enqueue(
        patient=patient,
        channel=Channel.SMS,
        purpose=purpose,
        content_class=ContentClass.LOGISTICS,
        template_id="appointment-reminder",
        template_version=3,
        rendered=Rendered(body=BODY),
        **extra,
    )


def test_a_reminder_goes_to_the_provider_once_and_is_recorded(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    message = sms(patient)
    assert (message.status, message.scheduled_reason) == ("queued", "allowed")

    assert dispatch_due() == {"sent": 1}

    [received] = provider.requests
    assert received.form["To"] == MOBILE and received.form["Body"] == BODY
    assert received.form["MessagingServiceSid"].startswith("MG")
    assert received.idempotency_key == message.idempotency_key
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.send_reason == "allowed"
    assert message.provider_message_id.startswith("SM")
    assert (message.lease_owner, message.lease_until) == ("", None)
    assert ContactEvent.objects.filter(patient=patient, channel="sms").count() == 1
    summaries = set(TimelineEvent.objects.filter(patient=patient).values_list("summary", flat=True))
    assert "SMS appointments message sent" in summaries
    assert AuditEvent.objects.filter(action="message.send", patient_id=patient.pk).count() == 1
    assert dispatch_due() == {}, "nothing is sent twice"
    assert len(provider.requests) == 1


def test_a_message_withheld_by_consent_is_stored_with_its_reason_and_never_sent(
    provider: FakeTwilio,
) -> None:
    patient = reachable_patient(sms_consent=False)
    message = sms(patient)
    assert message.status == MessageStatus.WITHHELD
    assert message.scheduled_reason == "no_consent"
    assert dispatch_due() == {}
    assert provider.requests == []
    assert Message.objects.get(pk=message.pk).body == BODY, "kept, visible, not dropped"


def test_consent_withdrawn_after_scheduling_withholds_the_message_at_send_time(
    provider: FakeTwilio,
) -> None:
    patient = reachable_patient()
    message = sms(patient)
    consent_record(
        patient=patient,
        kind=ConsentKind.SMS,
        status=ConsentStatus.REVOKED,
        capture_method=CaptureMethod.VERBAL,
    )
    assert dispatch_due() == {"withheld": 1}
    message.refresh_from_db()
    assert (message.status, message.scheduled_reason, message.send_reason) == (
        "withheld",
        "allowed",
        "opted_out",
    )
    assert provider.requests == []


def test_quiet_hours_defer_the_message_to_the_local_morning(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    late = datetime.datetime(2026, 6, 11, 2, 0, tzinfo=datetime.UTC)  # 22:00 in New York
    with clock.frozen(late):
        message = sms(patient, purpose=Purpose.CARE_REMINDER)
        assert message.scheduled_reason == "quiet_hours"
        assert message.next_attempt_at == datetime.datetime(2026, 6, 11, 12, tzinfo=datetime.UTC)
        assert dispatch_due() == {}
    with clock.frozen(datetime.datetime(2026, 6, 11, 12, 0, 1, tzinfo=datetime.UTC)):
        assert dispatch_due() == {"sent": 1}


def test_a_rate_limit_is_honoured_with_its_retry_after(provider: FakeTwilio) -> None:
    message = sms(reachable_patient())
    provider.fail_next(429, retry_after=7)
    assert dispatch_due() == {"retry": 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at == clock.now() + datetime.timedelta(seconds=7)
    assert message.status_detail == "sms 429 rate limited"
    with advance(6):
        assert dispatch_due() == {}
    with advance(7):
        assert dispatch_due() == {"sent": 1}
    assert [r.status for r in provider.requests] == [429, 201]
    assert len(provider.delivered) == 1


def test_server_errors_back_off_then_dead_letter_with_a_reason(
    provider: FakeTwilio, settings: Any
) -> None:
    settings.OUTREACH_MAX_ATTEMPTS = 2
    message = sms(reachable_patient())
    provider.fail_next(503)
    provider.fail_next(500)
    assert dispatch_due() == {"retry": 1}
    message.refresh_from_db()
    wait = (message.next_attempt_at - clock.now()).total_seconds()
    base = settings.OUTREACH_RETRY_BASE_SECONDS
    assert base / 2 <= wait <= base, "backoff with jitter"
    with advance(base):
        assert dispatch_due() == {"dead": 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.DEAD
    assert message.status_detail == "gave up after 2 attempts: sms 500"
    assert provider.delivered == []


def test_a_number_the_provider_refuses_is_dead_lettered_by_code_without_the_number(
    provider: FakeTwilio,
) -> None:
    provider.bad_numbers.add("+16175550199")
    message = sms(reachable_patient(mobile="+16175550199"))
    assert dispatch_due() == {"dead": 1}
    message.refresh_from_db()
    assert message.status_detail == "sms 400 code 21211"
    assert "555" not in message.status_detail


def test_no_active_baa_means_no_phi_goes_to_the_vendor(provider: FakeTwilio) -> None:
    Vendor.objects.filter(name="Twilio").delete()
    message = sms(reachable_patient())
    assert dispatch_due() == {"dead": 1}
    message.refresh_from_db()
    assert message.status_detail == "no active BAA for Twilio"
    assert provider.requests == []


def test_a_claim_whose_lease_expired_is_taken_up_again_and_not_delivered_twice(
    provider: FakeTwilio, settings: Any
) -> None:
    message = sms(reachable_patient())
    # A worker claims the message, the provider accepts it, and the worker dies before
    # recording anything.
    [crashed] = messages_claim(owner="worker-that-died", limit=10)
    first_sid = channel_for("sms").send(Message.objects.get(pk=message.pk))
    assert messages_claim(owner="too-early", limit=10) == [], "the lease still holds"

    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        assert dispatch_due() == {"reconciled": 1}
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT
        assert message.provider_message_id == first_sid
        assert message.attempts == 2
        # The dead worker, were it to wake, no longer holds the message.
        assert message_send(crashed) == "lost"

    assert provider.lookups == 1, "the provider was asked before any resend"
    assert len(provider.requests) == 1 and len(provider.delivered) == 1, "and nothing resent"
    assert ContactEvent.objects.filter(patient=message.patient).count() == 1


def test_enqueueing_twice_with_one_key_makes_one_message(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    first = sms(patient, idempotency_key="journey-7-step-2")
    again = sms(patient, idempotency_key="journey-7-step-2")
    assert first.pk == again.pk
    assert Message.objects.count() == 1


def test_no_message_text_or_number_reaches_the_logs(
    provider: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sms(reachable_patient())
    provider.fail_next(503)
    dispatch_due()
    with advance(3600):
        dispatch_due()
    assert caplog.records, "the dispatcher logs its outcomes"
    assert "Rosa" not in caplog.text and "5550101" not in caplog.text


def test_a_rate_limit_pauses_the_whole_channel_not_just_one_message(
    provider: FakeTwilio,
) -> None:
    patients = [reachable_patient(mobile=f"+1617555{n:04d}") for n in range(3)]
    for patient in patients:
        sms(patient)
    provider.fail_next(429, retry_after=30)
    assert dispatch_due() == {"retry": 1, "paused": 2}
    assert len(provider.requests) == 1, "no more requests while the provider asked us to wait"
    assert {m.attempts for m in Message.objects.all()} == {0, 1}
    with advance(31):
        assert dispatch_due() == {"sent": 3}


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="SQLite claims in an exclusive transaction, one writer at a time; its in-memory "
    "test database refuses concurrent threads outright instead of making them wait",
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_never_claim_the_same_message() -> None:
    patient = reachable_patient()
    for _ in range(40):
        sms(patient)

    def claim(owner: str) -> list[Any]:
        try:
            taken = []
            while batch := messages_claim(owner=owner, limit=3):
                taken += [c.message_id for c in batch]
            return taken
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(claim, [f"worker-{n}" for n in range(4)]))
    claimed = [pk for result in results for pk in result]
    assert len(claimed) == 40 and len(set(claimed)) == 40
