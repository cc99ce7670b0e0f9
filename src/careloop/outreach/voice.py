"""What happens on a reminder call: the key pressed, and the call's final status.

The provider posts the digit to the Gather's action, which names the message by a
signed token (careloop.outreach.channels.voice.gather_url). 1 confirms the message's
appointment and 2 cancels it (careloop.outreach.replies); anything else asks again.
Each (call, digit) is recorded once as an `InboundMessage` (channel voice), so the
provider retrying the webhook changes nothing more and hears the same answer. The
answer is TwiML said on the call, logistics-free.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from careloop.consent.models import Channel
from careloop.core.clock import now
from careloop.outreach.channels.voice import gather, prompt, say, twiml
from careloop.outreach.inbound import CALL_STATUS, status_receive
from careloop.outreach.message_tokens import VOICE_GATHER, message_token_open
from careloop.outreach.models import InboundKind, InboundMessage, Message
from careloop.outreach.replies import Answer, appointment_answer
from careloop.patients.models import TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record

DIGITS = {"1": Answer.CONFIRM, "2": Answer.DECLINE}
KINDS = {Answer.CONFIRM: InboundKind.CONFIRM, Answer.DECLINE: InboundKind.DECLINE}
SPOKEN_OUTCOME = {Answer.CONFIRM: "confirmed", Answer.DECLINE: "cancelled"}
# A keypress arrives within minutes of the call; an older token is a replay.
GATHER_MAX_AGE_SECONDS = 24 * 60 * 60
GOODBYE = twiml("<Hangup/>")


def gather_message(*, token: str, call_sid: str) -> Message | None:
    """The message a Gather callback is about: its token must be genuine and recent,
    and name the call it came from (once we know the call's sid)."""
    message_id = message_token_open(token, use=VOICE_GATHER, max_age=GATHER_MAX_AGE_SECONDS)
    if message_id is None or not call_sid:
        return None
    message = Message.objects.select_related("patient").filter(pk=message_id).first()
    if message is None or message.channel != Channel.VOICE:
        return None
    if message.provider_message_id and message.provider_message_id != call_sid:
        return None
    return message


@transaction.atomic
def voice_keypress(*, message: Message, call_sid: str, digits: str) -> str:
    """Act on a key pressed on a reminder call, once per call and key; the TwiML to
    answer with."""
    answer = DIGITS.get(digits.strip())
    if answer is None or message.appointment_id is None:
        again = say(message, prompt(message, "again"))
        return twiml(again + gather(message, say(message, prompt(message, "choose"))))
    inbound = InboundMessage(
        provider_message_id=f"{call_sid}:{digits.strip()}"[:120],
        channel=Channel.VOICE,
        kind=KINDS[answer],
        from_address=message.address,
        body=digits.strip(),
        received_at=now(),
        handled_at=now(),
    )
    try:
        with transaction.atomic():  # a retried or concurrent callback loses here
            inbound.save(force_insert=True)
    except IntegrityError:
        return twiml(say(message, prompt(message, SPOKEN_OUTCOME[answer])) + "<Hangup/>")
    inbound.patients.set([message.patient])
    timeline_add(
        patient=message.patient,
        kind=TimelineKind.MESSAGE_RECEIVED,
        summary=f"Voice keypress: {InboundKind(inbound.kind).label.lower()}",
        ref_type="inbound_message",
        ref_id=str(inbound.id),
    )
    audit_record(
        action="message.receive",
        actor_kind="system",
        actor_id="voice-webhook",
        patient_id=message.patient_id,
        resource_type="inbound_message",
        resource_id=str(inbound.id),
        fields=("from_address", "body"),
    )
    status = appointment_answer(
        reminder=message, answer=answer, via=Channel.VOICE, reply_key=str(inbound.id)
    )
    spoken = SPOKEN_OUTCOME[answer] if status is not None else "closed"
    return twiml(say(message, prompt(message, spoken)) + "<Hangup/>")


def voice_status(*, call_sid: str, call_status: str) -> bool:
    """A call's final status: completed is delivered; busy, no answer, failed are not."""
    return status_receive(
        provider_message_id=call_sid,
        provider_status=call_status,
        error_code="",
        statuses=CALL_STATUS,
    )
