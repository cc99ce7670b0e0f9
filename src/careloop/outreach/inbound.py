"""What patients send back by SMS, and the provider's delivery reports.

Carriers require STOP, START and HELP to work: an opt-out keyword revokes the SMS
consent of every patient with that number (through the consent ledger, so may_contact
withholds every later text at once), START grants it again, HELP answers with the
practice's contact. Y, YES, C or CONFIRM confirms and N or NO declines the appointment
of the reminder awaiting an answer on that number (careloop.outreach.replies); without
one they are ordinary inbox items. Anything else waits in the staff inbox. Each provider
message id is processed once: a replayed webhook changes nothing and gets no second
reply.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.db import IntegrityError, transaction

from careloop.consent.ledger import consent_current, consent_record
from careloop.consent.models import CaptureMethod, Channel, ConsentKind, ConsentStatus
from careloop.core.clock import now
from careloop.outreach.models import InboundKind, InboundMessage, Message, MessageStatus
from careloop.outreach.replies import Answer, appointment_answer, reminder_awaiting_reply
from careloop.outreach.timeline import message_timeline
from careloop.patients.models import ContactPoint, ContactSystem, Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record
from careloop.security.fields import blind_value

OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP"})
# Spanish too: the Spanish reminders ask for C, and people answer "sí".
CONFIRM_WORDS = frozenset({"Y", "YES", "C", "CONFIRM", "SI", "SÍ", "CONFIRMAR"})
DECLINE_WORDS = frozenset({"N", "NO"})
ANSWERS = {InboundKind.CONFIRM: Answer.CONFIRM, InboundKind.DECLINE: Answer.DECLINE}
KEYWORD_CONSENT = {
    InboundKind.OPT_OUT: ConsentStatus.REVOKED,
    InboundKind.OPT_IN: ConsentStatus.GRANTED,
}
# Delivery reports that move a sent message on; anything else is progress we ignore.
PROVIDER_STATUS = {
    "delivered": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
}
# A reminder call's final status (careloop.outreach.channels.voice): answered, or not.
CALL_STATUS = {
    "completed": MessageStatus.DELIVERED,
    "busy": MessageStatus.FAILED,
    "no-answer": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
}


def classify(body: str) -> InboundKind:
    """The keyword a reply is, by the carriers' rule: the whole message, any case."""
    word = body.strip().strip(".!").upper()
    if word in OPT_OUT_WORDS:
        return InboundKind.OPT_OUT
    if word in OPT_IN_WORDS:
        return InboundKind.OPT_IN
    if word in HELP_WORDS:
        return InboundKind.HELP
    if word in CONFIRM_WORDS:
        return InboundKind.CONFIRM
    if word in DECLINE_WORDS:
        return InboundKind.DECLINE
    return InboundKind.INBOX


def reply_for(kind: InboundKind) -> str | None:
    """The carrier-required answer to a keyword (no PHI in it); None for inbox items."""
    practice = settings.PRACTICE_NAME
    if kind == InboundKind.OPT_OUT:
        return (
            f"{practice}: you are unsubscribed and will get no more texts. "
            "Reply START to resubscribe."
        )
    if kind == InboundKind.OPT_IN:
        return f"{practice}: texts are on again. Reply HELP for help, STOP to opt out."
    if kind == InboundKind.HELP:
        return str(settings.SMS_HELP_TEXT)
    return None


def patients_by_phone(number: str) -> list[Patient]:
    index = blind_value("contact", number)
    if index is None:
        return []
    ids = ContactPoint.objects.filter(system=ContactSystem.PHONE, value_bidx=index).values(
        "patient_id"
    )
    return list(Patient.objects.filter(pk__in=ids, merged_into__isnull=True))


def _apply_keyword(patient: Patient, kind: InboundKind) -> None:
    status = KEYWORD_CONSENT.get(kind)
    if status is None or consent_current(patient=patient, kind=ConsentKind.SMS, at=now()) == status:
        return
    consent_record(
        patient=patient,
        kind=ConsentKind.SMS,
        status=status,
        capture_method=CaptureMethod.SMS_KEYWORD,
        note=f"SMS keyword reply ({InboundKind(kind).label.lower()})",
    )


@transaction.atomic
def inbound_receive(*, provider_message_id: str, from_address: str, body: str) -> str | None:
    """Record and act on one inbound SMS; the reply to send, or None (also for a replay)."""
    if InboundMessage.objects.filter(provider_message_id=provider_message_id).exists():
        return None
    kind = classify(body)
    at = now()
    patients = patients_by_phone(from_address)
    reminder = None
    if kind in ANSWERS:
        reminder = reminder_awaiting_reply(patients=patients, number=from_address)
        if reminder is None:
            kind = InboundKind.INBOX  # a Y or N with nothing to answer: a person reads it
    inbound = InboundMessage(
        provider_message_id=provider_message_id,
        kind=kind,
        from_address=from_address,
        body=body,
        received_at=at,
        handled_at=None if kind == InboundKind.INBOX else at,
    )
    try:
        with transaction.atomic():  # a concurrent replay of the same webhook loses here
            inbound.save(force_insert=True)
    except IntegrityError:
        return None
    inbound.patients.set(patients)
    for patient in patients:
        _apply_keyword(patient, kind)
        timeline_add(
            patient=patient,
            kind=TimelineKind.MESSAGE_RECEIVED,
            summary=f"SMS reply: {InboundKind(kind).label.lower()}",
            at=at,
            ref_type="inbound_message",
            ref_id=str(inbound.id),
        )
        audit_record(
            action="message.receive",
            actor_kind="system",
            actor_id="sms-webhook",
            patient_id=patient.pk,
            resource_type="inbound_message",
            resource_id=str(inbound.id),
            fields=("from_address", "body"),
        )
    if reminder is not None:
        appointment_answer(
            reminder=reminder, answer=ANSWERS[kind], via=Channel.SMS, reply_key=str(inbound.id)
        )
    return reply_for(kind)


@transaction.atomic
def status_receive(
    *,
    provider_message_id: str,
    provider_status: str,
    error_code: str,
    statuses: Mapping[str, MessageStatus] = PROVIDER_STATUS,
) -> bool:
    """Apply a delivery report to a sent message, once; True if it changed the message.

    `statuses` maps the provider's words to ours (CALL_STATUS for a call)."""
    status = statuses.get(provider_status.lower())
    if status is None or not provider_message_id:
        return False
    detail = f"provider error {error_code}"[:200] if error_code.isdigit() else ""
    at = now()
    delivered_at = at if status == MessageStatus.DELIVERED else None
    changed = Message.objects.filter(
        provider_message_id=provider_message_id, status=MessageStatus.SENT
    ).update(status=status, status_detail=detail, delivered_at=delivered_at, updated_at=at)
    if not changed:
        return False
    for message in Message.objects.filter(provider_message_id=provider_message_id):
        message_timeline(message)
    return True
