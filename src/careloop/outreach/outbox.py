"""`message_enqueue`: the one way a message enters the outbox.

The row is written in the caller's transaction (a journey step, a reply, a staff
action), so the message exists exactly when the event that caused it does. It passes
`may_contact` here and again when sent (careloop.outreach.dispatch). A "not now"
(quiet hours, a frequency cap) waits until the decision may change; a "no" is stored
as withheld with its reason, visible rather than dropped.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from careloop.consent.decisions import Decision, may_contact
from careloop.consent.models import Channel, ContentClass, Purpose, RestrictedTopic
from careloop.core.clock import now
from careloop.outreach.models import Enrollment, Message, MessageStatus
from careloop.outreach.timeline import message_timeline
from careloop.patients.models import ContactPoint, ContactSystem, Patient
from careloop.scheduling.models import Appointment
from careloop.security import normalize
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Op, Resource, require

# Where each channel's address comes from: (contact system, the flag that allows it).
ADDRESS_SOURCE = {
    Channel.SMS: (ContactSystem.PHONE, "can_sms"),
    Channel.EMAIL: (ContactSystem.EMAIL, "can_email"),
    Channel.VOICE: (ContactSystem.PHONE, "can_voice"),
}


@dataclass(frozen=True)
class Rendered:
    """A template rendered for one patient (class I: it may name them)."""

    body: str
    subject: str | None = None
    body_html: str | None = None


@dataclass(frozen=True)
class About:
    """What produced a message (a journey step, an appointment it reminds of) and the
    language it was rendered in (`language_fallback`: not the patient's own)."""

    enrollment: Enrollment | None = None
    step: int | None = None
    appointment: Appointment | None = None
    language: str = "en"
    language_fallback: bool = False


# The withheld reason of a message kept back by the test allowlist.
NOT_ALLOWLISTED = "not_on_test_allowlist"


def allowlisted(address: str) -> bool:
    """May a message to `address` leave in test mode? (Always, outside test mode; and
    for the portal and push, which have no address and reach no stranger.)"""
    if not settings.OUTREACH_TEST_MODE or not address:
        return True
    wanted = {a.strip().lower() for a in settings.OUTREACH_TEST_ALLOWLIST}
    return address.strip().lower() in wanted


def address_for(*, patient: Patient, channel: Channel) -> str:
    """The patient's best verified address for the channel, or "" (portal, push, none)."""
    source = ADDRESS_SOURCE.get(channel)
    if source is None:
        return ""
    system, flag = source
    contact = (
        ContactPoint.objects.filter(patient=patient, system=system, verified=True, **{flag: True})
        .order_by("rank", "id")
        .first()
    )
    if contact is None:
        return ""
    return phone_e164(contact.value) if system == ContactSystem.PHONE else contact.value


def phone_e164(number: str) -> str:
    """A phone number as SMS and voice providers take it (E.164); one that cannot be
    read as such is kept, and the provider's refusal dead-letters the message."""
    try:
        return normalize.phone(number)
    except normalize.NormalizationError:
        return number


def _apply_decision(message: Message, decision: Decision, *, at: datetime.datetime) -> None:
    message.scheduled_reason = str(decision.reason)
    if decision.allowed:
        message.status, message.next_attempt_at = MessageStatus.QUEUED, at
    elif decision.retry_at is not None:
        # Not now, but later: wait until the rule that said no may say yes.
        message.status, message.next_attempt_at = MessageStatus.QUEUED, decision.retry_at
    else:
        message.status, message.next_attempt_at = MessageStatus.WITHHELD, at
        message.status_detail = decision.detail


def message_enqueue(
    *,
    patient: Patient,
    channel: Channel,
    purpose: Purpose,
    content_class: ContentClass,
    template_id: str,
    template_version: int,
    rendered: Rendered,
    idempotency_key: str | None = None,
    topic: RestrictedTopic | None = None,
    send_at: datetime.datetime | None = None,
    actor: User | None = None,
    about: About | None = None,
) -> Message:
    """Put one message in the outbox (or store it withheld); the message row.

    `idempotency_key` lets a caller that may run twice (a journey step re-run after a
    crash) enqueue once: the same key gives back the message already stored. `actor`
    is the staff user sending by hand; None is the system (journeys, replies). `about`
    says what produced it and in which language.
    """
    if actor is not None:
        require(actor, Op.WRITE, Resource.MESSAGES, patient_id=patient.pk)
    key = idempotency_key or f"msg-{uuid.uuid4().hex}"
    existing = Message.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    return _enqueue(
        patient=patient,
        channel=Channel(channel),
        purpose=Purpose(purpose),
        content_class=ContentClass(content_class),
        template=(template_id, template_version),
        rendered=rendered,
        key=key,
        topic=topic,
        at=send_at or now(),
        actor=actor,
        about=about or About(),
    )


@transaction.atomic
def _enqueue(
    *,
    patient: Patient,
    channel: Channel,
    purpose: Purpose,
    content_class: ContentClass,
    template: tuple[str, int],
    rendered: Rendered,
    key: str,
    topic: RestrictedTopic | None,
    at: datetime.datetime,
    actor: User | None,
    about: About,
) -> Message:
    decision = may_contact(patient, channel, purpose, content_class, at, topic=topic)
    stamp = now()
    message = Message(
        id=uuid.uuid4(),
        patient=patient,
        purpose=purpose,
        channel=channel,
        content_class=content_class,
        template_id=template[0],
        template_version=template[1],
        topic=str(topic or ""),
        address=address_for(patient=patient, channel=channel),
        subject=rendered.subject,
        body=rendered.body,
        body_html=rendered.body_html,
        idempotency_key=key,
        enrollment=about.enrollment,
        step=about.step,
        appointment=about.appointment,
        language=about.language,
        language_fallback=about.language_fallback,
        created_at=stamp,
        updated_at=stamp,
    )
    _apply_decision(message, decision, at=at)
    if message.status != MessageStatus.WITHHELD and not allowlisted(message.address):
        message.status, message.scheduled_reason = MessageStatus.WITHHELD, NOT_ALLOWLISTED
        message.status_detail = "test mode: the address is not on the test allowlist"
    try:
        with transaction.atomic():  # a savepoint: a racing twin must not break the caller
            message.save(force_insert=True)
    except IntegrityError:
        return Message.objects.get(idempotency_key=key)
    actor_kwargs: dict[str, object] = (
        {"actor": actor} if actor is not None else {"actor_kind": "system", "actor_id": "outreach"}
    )
    audit_record(
        action="message.enqueue",
        patient_id=patient.pk,
        resource_type="message",
        resource_id=str(message.id),
        fields=("address", "body"),
        **actor_kwargs,  # type: ignore[arg-type]
    )
    if message.status == MessageStatus.WITHHELD:
        message_timeline(message, actor=actor)
    return message
