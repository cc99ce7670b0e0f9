"""Y/N answers to an SMS appointment reminder, on the signed inbound webhook.

The reminder goes out through the dispatcher to the loopback provider; the answer
comes back signed as the provider signs; the acknowledgement goes out through the
outbox again.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.test import Client

from careloop.consent.ledger import consent_current
from careloop.consent.models import Channel, ConsentKind, ContentClass, Purpose
from careloop.core import clock
from careloop.outreach.dispatch import dispatch_due
from careloop.outreach.models import InboundKind, InboundMessage, Message, MessageStatus
from careloop.outreach.outbox import About, Rendered, message_enqueue
from careloop.outreach.webhooks import twilio_signature
from careloop.patients.models import Patient, TimelineEvent
from careloop.scheduling.models import Appointment, AppointmentStatus, Provider
from tests.outreach.conftest import MOBILE, reachable_patient
from tests.outreach.fake_twilio import FakeTwilio
from tests.patients.builders import add_appointment, make_location, make_provider

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vendors")]

# Thursday 11 June 2026, 10:30 in Chicago (the clinic's zone): tomorrow.
VISIT = datetime.datetime(2026, 6, 11, 15, 30, tzinfo=datetime.UTC)
INBOUND = "/webhooks/sms/inbound"


def visit(patient: Patient, start: datetime.datetime = VISIT) -> Appointment:
    provider = Provider.objects.first() or make_provider(make_location())
    return add_appointment(patient, provider, start)


def reminder(patient: Patient, appointment: Appointment | None, *, language: str = "en") -> Message:
    """An appointment reminder, sent through the provider."""
    message = message_enqueue(
        patient=patient,
        channel=Channel.SMS,
        purpose=Purpose.APPOINTMENT,
        content_class=ContentClass.LOGISTICS,
        template_id="appointment-reminder",
        template_version=1,
        rendered=Rendered(body="Your visit is Thu 10:30 at Riverbend Main. Reply Y or N."),
        about=About(appointment=appointment, language=language),
    )
    assert dispatch_due() == {"sent": 1}
    message.refresh_from_db()
    return message


def reply(
    provider: FakeTwilio, body: str, *, sid: str = "SM" + "a" * 32, sender: str = MOBILE
) -> Any:
    """The provider posting a patient's text (no public base set: the request's own URL)."""
    params = {
        "AccountSid": provider.account_sid,
        "MessageSid": sid,
        "From": sender,
        "To": "+13125550100",
        "Body": body,
    }
    url = f"https://testserver{INBOUND}"
    signature = twilio_signature(url=url, params=params, token=provider.auth_token)
    response = Client().post(
        INBOUND, params, headers={"X-Twilio-Signature": signature}, secure=True
    )
    assert response.status_code == 200
    return response


def acknowledgements() -> list[Message]:
    return list(Message.objects.filter(template_id__startswith="appointment-c"))


@pytest.mark.parametrize("word", ["Y", "yes", "c", "Confirm", " y. ", "Sí", "si"])
def test_a_yes_reply_confirms_the_reminders_appointment(provider: FakeTwilio, word: str) -> None:
    patient = reachable_patient()
    appointment = visit(patient)
    sent = reminder(patient, appointment)

    response = reply(provider, word)

    assert b"<Message>" not in response.content, "the answer goes through the outbox"
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CONFIRMED
    sent.refresh_from_db()
    assert (sent.status, sent.replied_at) == (MessageStatus.REPLIED, clock.now())
    inbound = InboundMessage.objects.get()
    assert (inbound.kind, inbound.handled_at) == (InboundKind.CONFIRM, clock.now())
    summaries = set(TimelineEvent.objects.filter(patient=patient).values_list("summary", flat=True))
    assert "Appointment confirmed by SMS reply" in summaries
    [ack] = acknowledgements()
    assert (ack.template_id, ack.status, ack.channel) == ("appointment-confirmed", "queued", "sms")
    assert (ack.template_version, ack.content_class) == (1, "logistics")
    assert ack.body == (
        "Riverbend Family Health: Thank you! Your appointment on Thursday, June 11 at "
        "10:30 AM is confirmed."
    )
    assert dispatch_due() == {"sent": 1}
    assert provider.delivered[-1]["Body"] == ack.body


def test_a_no_reply_cancels_it_and_a_later_yes_goes_to_the_inbox(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    appointment = visit(patient)
    reminder(patient, appointment)

    reply(provider, "N", sid="SM" + "1" * 32)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED
    [ack] = acknowledgements()
    assert ack.template_id == "appointment-cancelled"
    assert "is cancelled" in ack.body
    assert TimelineEvent.objects.filter(summary="Appointment cancelled by SMS reply").count() == 1

    reply(provider, "Y", sid="SM" + "2" * 32)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED, "a person rebooks, not a Y"
    later = InboundMessage.objects.get(provider_message_id="SM" + "2" * 32)
    assert (later.kind, later.handled_at) == (InboundKind.INBOX, None)
    assert len(acknowledgements()) == 1


def test_y_or_n_without_a_reminder_awaiting_an_answer_goes_to_the_staff_inbox(
    provider: FakeTwilio,
) -> None:
    patient = reachable_patient()
    booked = visit(patient)
    reminder(patient, None)  # a message about no appointment
    past = visit(patient, clock.now() - datetime.timedelta(days=1))
    reminder(patient, past)  # a reminder whose appointment is over

    reply(provider, "Y", sid="SM" + "3" * 32)
    reply(provider, "no", sid="SM" + "4" * 32)

    assert set(InboundMessage.objects.values_list("kind", flat=True)) == {InboundKind.INBOX}
    assert InboundMessage.objects.filter(handled_at__isnull=True).count() == 2
    booked.refresh_from_db()
    past.refresh_from_db()
    assert (booked.status, past.status) == ("booked", "booked")
    assert acknowledgements() == []


def test_a_reminder_not_yet_sent_takes_no_answer(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    appointment = visit(patient)
    queued = message_enqueue(
        patient=patient,
        channel=Channel.SMS,
        purpose=Purpose.APPOINTMENT,
        content_class=ContentClass.LOGISTICS,
        template_id="appointment-reminder",
        template_version=1,
        rendered=Rendered(body="Reply Y or N."),
        about=About(appointment=appointment),
    )
    assert queued.status == MessageStatus.QUEUED
    reply(provider, "Y")
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    assert InboundMessage.objects.get().kind == InboundKind.INBOX


def test_the_same_message_sid_twice_confirms_and_acknowledges_once(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    reminder(patient, visit(patient))
    reply(provider, "C")
    reply(provider, "C")
    assert InboundMessage.objects.count() == 1
    assert len(acknowledgements()) == 1
    assert TimelineEvent.objects.filter(summary="Appointment confirmed by SMS reply").count() == 1


def test_an_answer_acts_on_the_latest_reminder_to_that_number(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    first = visit(patient)
    second = visit(patient, VISIT + datetime.timedelta(days=7))
    reminder(patient, first)
    with clock.frozen(clock.now() + datetime.timedelta(minutes=5)):
        reminder(patient, second)
        reply(provider, "N")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("booked", "cancelled")


def test_on_a_shared_phone_the_answer_goes_to_the_patient_who_was_reminded(
    provider: FakeTwilio,
) -> None:
    mother = reachable_patient()
    son = reachable_patient()
    mothers, sons = visit(mother), visit(son, VISIT + datetime.timedelta(hours=1))
    reminder(son, sons)
    reply(provider, "yes")
    mothers.refresh_from_db()
    sons.refresh_from_db()
    assert (mothers.status, sons.status) == ("booked", "confirmed")
    [ack] = acknowledgements()
    assert ack.patient_id == son.pk


def test_a_spanish_speaker_is_acknowledged_in_spanish(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    Patient.objects.filter(pk=patient.pk).update(preferred_language="es")
    patient.refresh_from_db()
    reminder(patient, visit(patient), language="es")
    reply(provider, "Y")
    [ack] = acknowledgements()
    assert (ack.language, ack.language_fallback) == ("es", False)
    assert ack.body.startswith("Riverbend Family Health: ¡Gracias! Su cita del ")
    assert ack.body.endswith("está confirmada.")


def test_stop_still_opts_out_while_a_reminder_awaits_an_answer(provider: FakeTwilio) -> None:
    patient = reachable_patient()
    appointment = visit(patient)
    reminder(patient, appointment)
    assert b"unsubscribed" in reply(provider, "STOP").content
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED
    assert consent_current(patient=patient, kind=ConsentKind.SMS, at=clock.now()) == "revoked"
