"""Inbound SMS and delivery reports on signed webhooks: STOP, START, HELP, the inbox."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from careloop.consent.ledger import consent_current
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
    ContentClass,
    Purpose,
)
from careloop.core import clock
from careloop.outreach.dispatch import dispatch_due
from careloop.outreach.models import InboundKind, InboundMessage, Message, MessageStatus
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.outreach.webhooks import twilio_signature
from careloop.patients.models import Patient, TimelineEvent
from tests.outreach.conftest import MOBILE, advance, reachable_patient
from tests.outreach.fake_twilio import FakeTwilio

pytestmark = pytest.mark.django_db

ACCOUNT = "AC" + "0" * 32
TOKEN = "webhook-test-token"
BASE = "https://careloop.example"


@pytest.fixture(autouse=True)
def _provider_account(settings: Any) -> None:
    settings.SMS_ACCOUNT_SID = ACCOUNT
    settings.SMS_AUTH_TOKEN = TOKEN
    settings.SMS_WEBHOOK_BASE_URL = BASE


def reply(
    body: str, *, sid: str = "SM" + "a" * 32, sender: str = MOBILE, token: str = TOKEN
) -> Any:
    path = "/webhooks/sms/inbound"
    params = {"AccountSid": ACCOUNT, "MessageSid": sid, "From": sender, "To": "+13125550100"}
    params["Body"] = body
    signature = twilio_signature(url=BASE + path, params=params, token=token)
    return Client().post(path, params, headers={"X-Twilio-Signature": signature}, secure=True)


def sms_reminder(patient: Patient) -> Message:
    return message_enqueue(
        patient=patient,
        channel=Channel.SMS,
        purpose=Purpose.APPOINTMENT,
        content_class=ContentClass.LOGISTICS,
        template_id="appointment-reminder",
        template_version=1,
        rendered=Rendered(body="See you Thursday at 10:30."),
    )


def test_a_stop_reply_records_the_opt_out_and_a_later_sms_is_withheld() -> None:
    patient = reachable_patient()
    response = reply("Stop")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert b"unsubscribed" in response.content and b"START" in response.content

    assert consent_current(patient=patient, kind=ConsentKind.SMS, at=clock.now()) == "revoked"
    record = ConsentRecord.objects.filter(patient=patient, kind=ConsentKind.SMS).latest(
        "captured_at"
    )
    assert record.capture_method == CaptureMethod.SMS_KEYWORD
    later = sms_reminder(patient)
    assert (later.status, later.scheduled_reason) == ("withheld", "opted_out")


def test_every_opt_out_keyword_opts_out() -> None:
    patient = reachable_patient()
    for number, word in enumerate(
        ["STOPALL", "unsubscribe", "CANCEL", "end", "QUIT", "REVOKE", "OPTOUT", " stop. "]
    ):
        response = reply(word, sid=f"SM{number:032d}")
        assert b"unsubscribed" in response.content, word
    assert consent_current(patient=patient, kind=ConsentKind.SMS, at=clock.now()) == "revoked"


def test_a_stop_reply_stops_a_message_already_queued(settings: Any) -> None:
    patient = reachable_patient()
    queued = sms_reminder(patient)
    reply("STOP")
    assert dispatch_due() == {"withheld": 1}
    queued.refresh_from_db()
    assert queued.send_reason == "opted_out"


def test_start_opts_back_in() -> None:
    patient = reachable_patient()
    reply("STOP", sid="SM" + "1" * 32)
    # A minute later (the clock is pinned: two answers at one instant have no order).
    with advance(60):
        response = reply("start", sid="SM" + "2" * 32)
        assert b"texts are on again" in response.content
        assert consent_current(patient=patient, kind=ConsentKind.SMS, at=clock.now()) == "granted"
        assert sms_reminder(patient).status == MessageStatus.QUEUED


def test_help_answers_with_the_practice_contact(settings: Any) -> None:
    settings.SMS_HELP_TEXT = "Riverbend Family Health: call (312) 555-0100. Reply STOP to opt out."
    response = reply("HELP")
    assert b"call (312) 555-0100" in response.content


def test_anything_else_is_filed_for_the_staff_inbox_encrypted() -> None:
    patient = reachable_patient()
    response = reply("Can I come at 11 instead? My knee is worse")
    assert b"<Message>" not in response.content
    item = InboundMessage.objects.get()
    assert item.kind == InboundKind.INBOX and item.handled_at is None
    assert item.body.startswith("Can I come at 11")
    assert list(item.patients.all()) == [patient]
    raw = InboundMessage.objects.values_list("body", flat=True).get()
    assert b"knee" not in bytes(raw)
    assert TimelineEvent.objects.filter(patient=patient, kind="message_received").exists()


def test_a_bad_signature_is_refused_and_changes_nothing() -> None:
    patient = reachable_patient()
    response = reply("STOP", token="not-the-token")
    assert response.status_code == 403
    assert InboundMessage.objects.count() == 0
    assert consent_current(patient=patient, kind=ConsentKind.SMS, at=clock.now()) == "granted"


def test_an_unsigned_request_and_a_get_are_refused() -> None:
    assert Client().post("/webhooks/sms/inbound", {"Body": "STOP"}, secure=True).status_code == 403
    assert Client().get("/webhooks/sms/inbound", secure=True).status_code == 405


def test_the_same_message_sid_twice_is_processed_once() -> None:
    patient = reachable_patient()
    first = reply("STOP")
    again = reply("STOP")
    assert b"<Message>" in first.content
    assert b"<Message>" not in again.content, "the confirmation goes once"
    assert InboundMessage.objects.count() == 1
    revocations = ConsentRecord.objects.filter(
        patient=patient, kind=ConsentKind.SMS, status=ConsentStatus.REVOKED
    )
    assert revocations.count() == 1


def test_a_stop_reply_opts_out_every_patient_sharing_the_number() -> None:
    mother = reachable_patient()
    son = reachable_patient()
    reply("STOP")
    for patient in (mother, son):
        assert consent_current(patient=patient, kind=ConsentKind.SMS, at=clock.now()) == "revoked"


@pytest.mark.django_db(transaction=True)
def test_delivery_reports_from_the_provider_mark_the_message_delivered(
    live_server: Any, settings: Any
) -> None:
    from tests.outreach.conftest import vendor_with_baa

    vendor_with_baa("Twilio", "sms")  # type: ignore[arg-type]
    fake = FakeTwilio(auth_token=TOKEN).start()
    try:
        settings.SMS_BASE_URL = fake.base_url
        settings.SMS_MESSAGING_SERVICE_SID = "MG" + "1" * 32
        settings.SMS_WEBHOOK_BASE_URL = live_server.url
        message = sms_reminder(reachable_patient())
        assert dispatch_due() == {"sent": 1}
        assert fake.delivered[0]["StatusCallback"] == f"{live_server.url}/webhooks/sms/status"
        fake.wait_for_callbacks(2)
    finally:
        fake.stop()
    assert fake.callbacks == [("sent", 204), ("delivered", 204)]
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert TimelineEvent.objects.filter(summary="SMS appointments message delivered").exists()


def test_a_failed_delivery_report_records_the_error_code(settings: Any) -> None:
    message = sms_reminder(reachable_patient())
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENT, provider_message_id="SM" + "f" * 32
    )
    path = "/webhooks/sms/status"
    params = {
        "AccountSid": ACCOUNT,
        "MessageSid": "SM" + "f" * 32,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
    }
    signature = twilio_signature(url=BASE + path, params=params, token=TOKEN)
    for _ in range(2):  # a replayed report changes nothing more
        response = Client().post(
            path, params, headers={"X-Twilio-Signature": signature}, secure=True
        )
        assert response.status_code == 204
    message.refresh_from_db()
    assert (message.status, message.status_detail) == ("failed", "provider error 30003")
    assert TimelineEvent.objects.filter(summary="SMS appointments message failed").count() == 1
