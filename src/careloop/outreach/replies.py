"""A patient's answer to an appointment reminder: Y or N by text, 1 or 2 on a call.

An answer counts only for a reminder that can still take one: a message about an
appointment (`Message.appointment`) that was sent, whose appointment is booked or
confirmed and still ahead. Confirming marks the appointment confirmed, declining
cancels it; either way the reminder is marked replied, the patient's timeline says so,
the patient's journeys wake up to react (a branch on the answer), and a text answer is
acknowledged through the outbox with the `appointment-confirmed` or
`appointment-cancelled` template, consent-checked like any message.
"""

from __future__ import annotations

import datetime
import enum
import logging

from django.db import transaction
from django.db.models import Q

from careloop.consent.models import Channel, Purpose
from careloop.core.clock import now
from careloop.outreach.journeys import journey_send, journeys_wake
from careloop.outreach.models import Message, MessageStatus
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.fields import blind_value

logger = logging.getLogger(__name__)
# An appointment an answer may still change.
OPEN_STATUSES = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
# A reminder that reached the provider (an earlier answer does not close it: Y then N
# cancels).
SENT_STATUSES = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.REPLIED,
)
# The newest reminders looked at for one number (a household shares a phone).
_CANDIDATES = 20


class Answer(enum.StrEnum):
    CONFIRM = "confirm"
    DECLINE = "decline"


OUTCOME = {Answer.CONFIRM: AppointmentStatus.CONFIRMED, Answer.DECLINE: AppointmentStatus.CANCELLED}
REPLY_TEMPLATE = {Answer.CONFIRM: "appointment-confirmed", Answer.DECLINE: "appointment-cancelled"}


def _awaiting(at: datetime.datetime) -> Q:
    return Q(
        appointment__isnull=False,
        appointment__start__gt=at,
        appointment__status__in=OPEN_STATUSES,
        status__in=SENT_STATUSES,
    )


def reminder_awaiting_reply(*, patients: list[Patient], number: str) -> Message | None:
    """The newest SMS reminder sent to `number` that an answer would act on, or None."""
    index = blind_value("contact", number)
    if index is None or not patients:
        return None
    candidates = (
        Message.objects.filter(_awaiting(now()), patient__in=patients, channel=Channel.SMS)
        .select_related("appointment", "patient")
        .order_by("-sent_at", "-created_at")[:_CANDIDATES]
    )
    # The address is encrypted: compare blind indexes of the few candidates.
    return next((m for m in candidates if blind_value("contact", m.address) == index), None)


@transaction.atomic
def appointment_answer(
    *, reminder: Message, answer: Answer, via: Channel, reply_key: str
) -> AppointmentStatus | None:
    """Apply an answer to the reminder's appointment; its new status, or None when the
    appointment can no longer take one (cancelled, past, changed meanwhile).

    `reply_key` identifies the answer (the inbound message); a text answer is
    acknowledged once per key by SMS, in the patient's language. A call answers on
    the call itself.
    """
    assert reminder.appointment_id is not None  # noqa: S101 - callers pass reminders
    at = now()
    appointment = (
        Appointment.objects.select_for_update()
        .select_related("location")
        .filter(pk=reminder.appointment_id, status__in=OPEN_STATUSES, start__gt=at)
        .first()
    )
    if appointment is None:
        return None
    status = OUTCOME[answer]
    how = "SMS reply" if via == Channel.SMS else "keypress on a reminder call"
    if appointment.status != status:
        appointment.status = status
        appointment.save(update_fields=["status"])
        timeline_add(
            patient=reminder.patient,
            kind=TimelineKind.APPOINTMENT,
            summary=f"Appointment {AppointmentStatus(status).label.lower()} by {how}",
            at=at,
            ref_type="appointment",
            ref_id=str(appointment.pk),
        )
    Message.objects.filter(pk=reminder.pk, status__in=SENT_STATUSES).update(
        status=MessageStatus.REPLIED, replied_at=at, updated_at=at
    )
    if via == Channel.SMS:
        acknowledged = journey_send(
            patient=reminder.patient,
            template_key=REPLY_TEMPLATE[answer],
            channels=[Channel.SMS],
            purpose=Purpose.APPOINTMENT,
            idempotency_key=f"reply-{reply_key}",
            at=at,
            appointment=appointment,
        )
        if acknowledged is None:
            # An admin retired the template: the answer stands, unacknowledged.
            logger.warning("no active %s template: answer not acknowledged", REPLY_TEMPLATE[answer])
    journeys_wake(patient_id=reminder.patient_id)
    return status
