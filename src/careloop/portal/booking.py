"""What a patient does to an appointment from the portal: book, confirm, reschedule,
cancel, check in. Each is the scheduling service (careloop.scheduling.booking) called
with the patient user as the actor, so the permission gate, the double-booking rule,
the timeline and the audit are the staff ones; the portal adds its own rules:

- only types the practice opened for self-booking (`AppointmentType.self_bookable`);
- changes online close at the type's lead time before the visit (the same rule that
  stops a booking that close): after that the patient calls the practice;
- check-in opens on the visit's day, `CHECK_IN_BEFORE` before the start, and closes
  `CHECK_IN_AFTER` after it;
- a booking (or a new time) is confirmed to the patient on their preferred channel
  through the outbox, once per appointment (`appointment-booked`, idempotency key by
  appointment), in the booking's transaction.

The appointment a page names comes from `portal_appointment`, which answers
`NotFound` alike for another patient's appointment and one that does not exist.
"""

from __future__ import annotations

import datetime
import enum
import logging
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db import transaction
from django.http import HttpRequest
from django_tasks_db.utils import exclusive_transaction

from careloop.consent.models import Channel, Purpose
from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.outreach.journeys import journey_send, journeys_wake
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.portal.models import PortalAccount
from careloop.portal.proxy import Power, proxy_access_audit, proxy_grants
from careloop.scheduling import booking
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
)
from careloop.security.audit import audit_record
from careloop.security.permissions import Op, Resource, require

logger = logging.getLogger(__name__)

CHECK_IN_BEFORE = datetime.timedelta(hours=2)
CHECK_IN_AFTER = datetime.timedelta(minutes=30)
BOOKED_TEMPLATE = "appointment-booked"
# The practice's order after the patient's own (journey_send puts theirs first).
CONFIRMATION_CHANNELS = [Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.PORTAL]
OPEN = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


class Refusal(enum.StrEnum):
    """Why the portal will not make a change; the page says it in the patient's words."""

    NOT_SELF_BOOKABLE = "not_self_bookable"
    PAST = "past"
    TOO_LATE = "too_late"
    NOT_OPEN = "not_open"
    CHECK_IN_CLOSED = "check_in_closed"


class PortalRefused(Exception):  # noqa: N818 - a refusal, with its reason
    def __init__(self, reason: Refusal) -> None:
        super().__init__(str(reason))
        self.reason = reason


# --- reading one appointment --------------------------------------------------------------


def portal_appointment(
    *,
    request: HttpRequest,
    account: PortalAccount,
    appointment_id: uuid.UUID,
    power: Power,
) -> Appointment:
    """An appointment of a record the account may use `power` on; audited (and the
    proxy access too). `NotFound` for anything else."""
    grants = {g.patient.pk: g for g in proxy_grants(account) if g.allows(power)}
    appointment = (
        Appointment.objects.select_related("patient", "provider", "location", "appointment_type")
        .filter(pk=appointment_id, patient_id__in=list(grants))
        .first()
    )
    if appointment is None:
        raise NotFound("no such appointment")
    proxy_access_audit(
        request=request, account=account, grant=grants[appointment.patient_id], power=power
    )
    audit_record(
        action="patient.view",
        request=request,
        patient_id=appointment.patient_id,
        resource_type="appointment",
        resource_id=str(appointment.pk),
        fields=("start", "status", "provider", "location", "appointment_type"),
    )
    return appointment


# --- the portal's rules -------------------------------------------------------------------


def change_refusal(appointment: Appointment, at: datetime.datetime | None = None) -> Refusal | None:
    """Why the patient may not reschedule or cancel online now; None when they may."""
    at = at or now()
    if appointment.status not in OPEN:
        return Refusal.NOT_OPEN
    if appointment.start <= at:
        return Refusal.PAST
    lead = datetime.timedelta(minutes=appointment.appointment_type.lead_minutes)
    if appointment.start - lead < at:
        return Refusal.TOO_LATE
    return None


def check_in_window(appointment: Appointment) -> tuple[datetime.datetime, datetime.datetime]:
    """When the patient may check in: from `CHECK_IN_BEFORE` before the start (not
    before the visit day's local midnight) to `CHECK_IN_AFTER` after it."""
    zone = ZoneInfo(appointment.location.time_zone)
    local_day = appointment.start.astimezone(zone).date()
    midnight = datetime.datetime.combine(local_day, datetime.time.min, zone)
    opens = max(appointment.start - CHECK_IN_BEFORE, midnight)
    return opens, appointment.start + CHECK_IN_AFTER


def check_in_open(appointment: Appointment, at: datetime.datetime | None = None) -> bool:
    at = at or now()
    opens, closes = check_in_window(appointment)
    return appointment.status in OPEN and opens <= at <= closes


# --- writes -------------------------------------------------------------------------------


def _confirmation(patient: Patient, appointment: Appointment) -> None:
    """The booking confirmation on the patient's preferred channel, once per appointment
    (the pre-visit journey's reminders start days before the visit, not now)."""
    sent = journey_send(
        patient=patient,
        template_key=BOOKED_TEMPLATE,
        channels=[str(c) for c in CONFIRMATION_CHANNELS],
        purpose=str(Purpose.APPOINTMENT),
        idempotency_key=f"portal-booked-{appointment.pk.hex}",
        at=now(),
        appointment=appointment,
    )
    if sent is None:
        logger.warning("portal booking: no %s template on any channel", BOOKED_TEMPLATE)


def portal_book(
    *,
    account: PortalAccount,
    patient: Patient,
    appointment_type: AppointmentType,
    provider: Provider,
    location: Location,
    start: datetime.datetime,
) -> Appointment:
    """Book a self-bookable slot for `patient` (the account's own record or one it may
    schedule for) and enqueue the confirmation, in one transaction. Raises
    `booking.SlotTaken` / `SlotUnavailable` (with the next free slots) as staff
    booking does, and `PortalRefused` for a type patients may not book."""
    if not appointment_type.self_bookable:
        raise PortalRefused(Refusal.NOT_SELF_BOOKABLE)
    with exclusive_transaction():
        appointment = booking.appointment_book(
            actor=account.user,
            patient=patient,
            appointment_type=appointment_type,
            provider=provider,
            location=location,
            start=start,
            source="portal",
        )
        _confirmation(patient, appointment)
    return appointment


def portal_reschedule(
    *, account: PortalAccount, appointment: Appointment, start: datetime.datetime
) -> Appointment:
    """Move the visit to another free slot of the same type, provider and place."""
    refused = change_refusal(appointment)
    if refused is not None:
        raise PortalRefused(refused)
    with exclusive_transaction():
        new = booking.appointment_reschedule(
            actor=account.user, appointment=appointment, start=start
        )
        _confirmation(appointment.patient, new)
    journeys_wake(patient_id=appointment.patient_id)
    return new


def portal_cancel(*, account: PortalAccount, appointment: Appointment) -> Appointment:
    """Cancel (the staff service: the time is free again at once), before the cut-off."""
    refused = change_refusal(appointment)
    if refused is not None:
        raise PortalRefused(refused)
    cancelled = booking.appointment_cancel(actor=account.user, appointment=appointment)
    journeys_wake(patient_id=appointment.patient_id)
    return cancelled


def portal_confirm(*, account: PortalAccount, appointment: Appointment) -> Appointment:
    """Booked → confirmed, as a Y reply to a reminder does (careloop.outreach.replies):
    the row, the timeline, the audit, and the journeys woken to see it. Confirming a
    confirmed visit changes nothing."""
    user = require(account.user, Op.WRITE, Resource.APPOINTMENTS, patient_id=appointment.patient_id)
    at = now()
    with transaction.atomic():
        held = (
            Appointment.objects.select_for_update().select_related("patient").get(pk=appointment.pk)
        )
        if held.status == AppointmentStatus.CONFIRMED:
            return held
        if held.status != AppointmentStatus.BOOKED or held.start <= at:
            raise PortalRefused(Refusal.NOT_OPEN if held.start > at else Refusal.PAST)
        held.status = AppointmentStatus.CONFIRMED
        held.save(update_fields=["status"])
        timeline_add(
            patient=held.patient,
            kind=TimelineKind.APPOINTMENT,
            summary="Appointment confirmed by the patient (portal)",
            at=at,
            actor=user,
            ref_type="appointment",
            ref_id=str(held.pk),
        )
        audit_record(
            action="appointment.confirm",
            actor=user,
            patient_id=held.patient_id,
            resource_type="Appointment",
            resource_id=str(held.pk),
            fields=["status"],
        )
    journeys_wake(patient_id=held.patient_id)
    return held


@dataclass(frozen=True)
class CheckInAnswers:
    """What the patient said at check-in (coded: no free text)."""

    demographics_correct: bool
    insurance_correct: bool


def portal_check_in(
    *, account: PortalAccount, appointment: Appointment, answers: CheckInAnswers
) -> Appointment:
    """Check the patient in (the staff service), inside the window; an answer that the
    details on file need updating goes on the timeline for the front desk."""
    if not check_in_open(appointment):
        raise PortalRefused(Refusal.CHECK_IN_CLOSED)
    with exclusive_transaction():
        checked = booking.appointment_check_in(actor=account.user, appointment=appointment)
        fields = [
            name
            for name, correct in (
                ("demographics", answers.demographics_correct),
                ("insurance", answers.insurance_correct),
            )
            if not correct
        ]
        if fields:
            timeline_add(
                patient=checked.patient,
                kind=TimelineKind.APPOINTMENT,
                summary="Checked in from the portal; needs updating: " + ", ".join(fields),
                actor=account.user,
                ref_type="appointment",
                ref_id=str(checked.pk),
            )
        audit_record(
            action="portal.check_in_answers",
            actor=account.user,
            patient_id=checked.patient_id,
            resource_type="Appointment",
            resource_id=str(checked.pk),
            fields=fields,
        )
    return checked
