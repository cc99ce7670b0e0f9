"""Voice reminders: a call through the loopback provider, a keypress, the call's end.

The call is placed through the dispatcher; the provider keeps the inline TwiML, and
the test plays the patient by posting the Gather's action signed as the provider signs
(`FakeTwilio.gather_request` / `press_key`), and the call's final status
(`finish_call`).
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

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
from careloop.outreach.dispatch import dispatch_due, messages_claim
from careloop.outreach.message_tokens import VOICE_GATHER, message_token_open
from careloop.outreach.models import InboundKind, InboundMessage, Message, MessageStatus
from careloop.outreach.outbox import About, Rendered, message_enqueue
from careloop.outreach.webhooks import twilio_signature
from careloop.patients.models import Patient, TimelineEvent
from careloop.scheduling.models import Appointment, AppointmentStatus, Provider
from tests.outreach.conftest import MOBILE, reachable_patient, vendor_with_baa
from tests.outreach.fake_twilio import FakeTwilio
from tests.patients.builders import add_appointment, make_location, make_provider

pytestmark = pytest.mark.django_db

BASE = "https://careloop.example"
CALLER_ID = "+13125550100"
VISIT = datetime.datetime(2026, 6, 11, 15, 30, tzinfo=datetime.UTC)
SCRIPT = (
    "Hello. This is Riverbend Family Health. Your visit is Thursday at 10:30, Main & Annex. "
    "Press 1 to confirm, press 2 to cancel."
)


@pytest.fixture
def voice(provider: FakeTwilio, settings: Any) -> FakeTwilio:
    vendor_with_baa("Twilio", "sms")  # type: ignore[arg-type]
    settings.VOICE_FROM_NUMBER = CALLER_ID
    settings.SMS_WEBHOOK_BASE_URL = BASE
    return provider


def callable_patient(*, voice_consent: bool = True) -> Patient:
    patient = reachable_patient()
    if voice_consent:
        consent_record(
            patient=patient,
            kind=ConsentKind.VOICE,
            status=ConsentStatus.GRANTED,
            capture_method=CaptureMethod.VERBAL,
            captured_at=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        )
    return patient


def visit(patient: Patient) -> Appointment:
    provider = Provider.objects.first() or make_provider(make_location())
    return add_appointment(patient, provider, VISIT)


def call(patient: Patient, appointment: Appointment | None, *, language: str = "en") -> Message:
    return message_enqueue(
        patient=patient,
        channel=Channel.VOICE,
        purpose=Purpose.APPOINTMENT,
        content_class=ContentClass.LOGISTICS,
        template_id="appointment-reminder",
        template_version=1,
        rendered=Rendered(body=SCRIPT),
        about=About(appointment=appointment, language=language),
    )


def placed(voice: FakeTwilio, patient: Patient, **extra: Any) -> tuple[Message, Appointment]:
    appointment = visit(patient)
    message = call(patient, appointment, **extra)
    assert dispatch_due() == {"sent": 1}
    message.refresh_from_db()
    return message, appointment


def press(voice: FakeTwilio, sid: str, digits: str, *, token: str | None = None) -> Any:
    """The provider calling the Gather's action (through the test client)."""
    url, params = voice.gather_request(sid, digits)
    signature = twilio_signature(url=url, params=params, token=token or voice.auth_token)
    parts = urlsplit(url)
    return Client().post(
        f"{parts.path}?{parts.query}",
        params,
        headers={"X-Twilio-Signature": signature},
        secure=True,
    )


def spoken(response: Any) -> list[str]:
    return [say.text or "" for say in ET.fromstring(response.content).iter("Say")]  # noqa: S314


def test_a_voice_reminder_places_a_call_reading_the_message_with_a_keypress_choice(
    voice: FakeTwilio,
) -> None:
    message, _ = placed(voice, callable_patient())

    [placed_call] = voice.calls
    form = placed_call["form"]
    assert (form["To"], form["From"]) == (MOBILE, CALLER_ID)
    assert form["StatusCallback"] == f"{BASE}/webhooks/voice/status"
    assert placed_call["idempotency_key"] == message.idempotency_key
    twiml = ET.fromstring(form["Twiml"])  # noqa: S314 - careloop's own TwiML
    gather = twiml.find("Gather")
    assert gather is not None and gather.attrib["numDigits"] == "1"
    assert gather.attrib["action"].startswith(f"{BASE}/webhooks/voice/gather?m=")
    says = [(s.attrib["language"], s.text) for s in gather.iter("Say")]
    assert says == [("en-US", SCRIPT)], "the template says which keys to press"
    assert twiml.find("Say") is not None, "what is said when no key is pressed"
    assert "Rosa" not in gather.attrib["action"] and MOBILE not in gather.attrib["action"]
    assert message.status == MessageStatus.SENT
    assert message.provider_message_id == placed_call["resource"]["sid"]
    assert message.provider_message_id.startswith("CA")


def test_a_spanish_reminder_is_spoken_in_spanish(voice: FakeTwilio) -> None:
    placed(voice, callable_patient(), language="es")
    twiml = ET.fromstring(voice.calls[0]["form"]["Twiml"])  # noqa: S314
    assert {s.attrib["language"] for s in twiml.iter("Say")} == {"es-US"}


def test_pressing_1_confirms_the_appointment_once(voice: FakeTwilio) -> None:
    patient = callable_patient()
    message, appointment = placed(voice, patient)

    first = press(voice, message.provider_message_id, "1")
    again = press(voice, message.provider_message_id, "1")  # the provider retries

    assert first.status_code == again.status_code == 200
    assert first["Content-Type"] == "text/xml"
    assert spoken(first) == spoken(again) == ["Thank you. Your appointment is confirmed. Goodbye."]
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CONFIRMED
    message.refresh_from_db()
    assert (message.status, message.replied_at) == (MessageStatus.REPLIED, clock.now())
    inbound = InboundMessage.objects.get()
    assert (inbound.channel, inbound.kind) == (Channel.VOICE, InboundKind.CONFIRM)
    assert list(inbound.patients.all()) == [patient]
    summaries = list(
        TimelineEvent.objects.filter(patient=patient).values_list("summary", flat=True)
    )
    assert summaries.count("Appointment confirmed by keypress on a reminder call") == 1
    assert summaries.count("Voice keypress: confirms an appointment (y, c)") == 1
    assert Message.objects.count() == 1, "the call itself is the acknowledgement"


def test_pressing_2_cancels_the_appointment(voice: FakeTwilio) -> None:
    message, appointment = placed(voice, callable_patient())
    response = press(voice, message.provider_message_id, "2")
    assert spoken(response)[0].startswith("Your appointment is cancelled.")
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    assert InboundMessage.objects.get().kind == InboundKind.DECLINE


def test_any_other_key_asks_again_and_changes_nothing(voice: FakeTwilio) -> None:
    message, appointment = placed(voice, callable_patient())
    response = press(voice, message.provider_message_id, "7")
    twiml = ET.fromstring(response.content)  # noqa: S314
    gather = twiml.find("Gather")
    assert gather is not None
    action = urlsplit(gather.attrib["action"])
    assert f"{action.scheme}://{action.netloc}{action.path}" == f"{BASE}/webhooks/voice/gather"
    assert message_token_open(parse_qs(action.query)["m"][0], use=VOICE_GATHER) == message.id
    assert spoken(response)[:2] == [
        "Sorry, that was not a choice.",
        "To confirm this appointment, press 1. To cancel it, press 2.",
    ]
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    assert InboundMessage.objects.count() == 0


def test_a_cancelled_appointment_cannot_be_confirmed_on_the_call(voice: FakeTwilio) -> None:
    message, appointment = placed(voice, callable_patient())
    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.CANCELLED)
    response = press(voice, message.provider_message_id, "1")
    assert spoken(response)[0].startswith("This appointment can no longer be changed")
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED


def test_a_keypress_with_a_bad_signature_or_token_is_refused(voice: FakeTwilio) -> None:
    message, appointment = placed(voice, callable_patient())
    sid = message.provider_message_id
    assert press(voice, sid, "2", token="not-the-token").status_code == 403

    url, params = voice.gather_request(sid, "2")
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    signature = twilio_signature(url=tampered, params=params, token=voice.auth_token)
    parts = urlsplit(tampered)
    response = Client().post(
        f"{parts.path}?{parts.query}",
        params,
        headers={"X-Twilio-Signature": signature},
        secure=True,
    )
    assert response.status_code == 200 and b"<Hangup/>" in response.content

    other_call = {**params, "CallSid": "CA" + "9" * 32}
    signature = twilio_signature(url=url, params=other_call, token=voice.auth_token)
    parts = urlsplit(url)
    response = Client().post(
        f"{parts.path}?{parts.query}",
        other_call,
        headers={"X-Twilio-Signature": signature},
        secure=True,
    )
    assert b"<Hangup/>" in response.content, "a token is good for its own call only"
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    assert InboundMessage.objects.count() == 0


def status(voice: FakeTwilio, sid: str, call_status: str) -> int:
    params = {"AccountSid": voice.account_sid, "CallSid": sid, "CallStatus": call_status}
    path = "/webhooks/voice/status"
    signature = twilio_signature(url=BASE + path, params=params, token=voice.auth_token)
    response = Client().post(path, params, headers={"X-Twilio-Signature": signature}, secure=True)
    return int(response.status_code)


@pytest.mark.parametrize(
    ("call_status", "expected"),
    [("completed", "delivered"), ("busy", "failed"), ("no-answer", "failed"), ("failed", "failed")],
)
def test_the_calls_final_status_moves_the_message(
    voice: FakeTwilio, call_status: str, expected: str
) -> None:
    message, _ = placed(voice, callable_patient())
    assert status(voice, message.provider_message_id, call_status) == 204
    assert status(voice, message.provider_message_id, call_status) == 204
    message.refresh_from_db()
    assert message.status == expected
    assert (message.delivered_at is not None) == (expected == "delivered")
    assert (
        TimelineEvent.objects.filter(summary=f"Voice call appointments message {expected}").count()
        == 1
    )


def test_a_rate_limited_or_failing_provider_is_retried(voice: FakeTwilio) -> None:
    message = call(callable_patient(), None)
    voice.fail_next(429, retry_after=7)
    assert dispatch_due() == {"retry": 1}
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.status_detail == "voice 429 rate limited"
    assert message.next_attempt_at == clock.now() + datetime.timedelta(seconds=7)

    voice.fail_next(503)
    with clock.frozen(clock.now() + datetime.timedelta(seconds=8)):
        assert dispatch_due() == {"retry": 1}
    message.refresh_from_db()
    assert message.status_detail == "voice 503"
    assert voice.calls == []


def test_a_call_whose_answer_never_came_is_reconciled_not_placed_twice(
    voice: FakeTwilio, settings: Any
) -> None:
    voice.honour_idempotency_key = False  # like Twilio: a second request is a second call
    settings.SMS_TIMEOUT_SECONDS = 1
    message = call(callable_patient(), None)
    hold = voice.hold_next(accept=True)
    try:
        assert dispatch_due() == {"in_doubt": 1}, "a read timeout after the call was placed"
    finally:
        hold.release()
    message.refresh_from_db()
    assert (message.status, message.status_detail) == (MessageStatus.SENDING, "voice ReadTimeout")
    assert message.lease_until is not None
    with clock.frozen(message.lease_until + datetime.timedelta(seconds=1)):
        assert dispatch_due() == {"reconciled": 1}
    message.refresh_from_db()
    assert len(voice.calls) == 1, "the patient's phone rang once"
    assert message.provider_message_id == voice.calls[0]["resource"]["sid"]


def test_a_call_that_never_reached_the_provider_is_placed_once_after_the_lease(
    voice: FakeTwilio, settings: Any
) -> None:
    voice.honour_idempotency_key = False
    message = call(callable_patient(), None)
    [claim] = messages_claim(owner="worker-that-died", limit=10)
    assert claim.message_id == message.pk
    with clock.frozen(
        clock.now() + datetime.timedelta(seconds=settings.OUTREACH_LEASE_SECONDS + 1)
    ):
        assert dispatch_due() == {"sent": 1}, "the provider had no call: placed now"
    assert voice.lookups == 1 and len(voice.calls) == 1


def test_a_bad_number_is_dead_lettered_by_code(voice: FakeTwilio) -> None:
    voice.bad_numbers.add(MOBILE)
    message = call(callable_patient(), None)
    assert dispatch_due() == {"dead": 1}
    message.refresh_from_db()
    assert message.status_detail == "voice 400 code 21211"


def test_no_voice_consent_no_call(voice: FakeTwilio) -> None:
    message = call(callable_patient(voice_consent=False), None)
    assert (message.status, message.scheduled_reason) == ("withheld", "no_consent")
    assert dispatch_due() == {}
    assert voice.calls == []


@pytest.mark.django_db(transaction=True)
def test_a_call_end_to_end_over_http(provider: FakeTwilio, live_server: Any, settings: Any) -> None:
    vendor_with_baa("Twilio", "sms")  # type: ignore[arg-type]
    settings.VOICE_FROM_NUMBER = CALLER_ID
    settings.SMS_WEBHOOK_BASE_URL = live_server.url
    message, appointment = placed(provider, callable_patient())

    answered = provider.press_key(message.provider_message_id, "1")
    ended = provider.finish_call(message.provider_message_id, "completed")

    assert answered.status_code == 200 and b"confirmed" in answered.content
    assert ended.status_code == 204
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CONFIRMED
    message.refresh_from_db()
    assert message.status == MessageStatus.REPLIED, "an answer outranks the call's end"
