"""Booking and the appointment's life after it: reschedule, cancel, check in, complete,
no-show. Each is one transaction that also writes the patient's timeline and an audit
event; outreach journeys read the resulting rows (status, created_at).

No double booking: the booking re-checks the slot inside its transaction and writes
`busy_until`, which PostgreSQL's exclusion constraint (migration 0003) compares, so of
two concurrent bookings of one slot exactly one commits. A type that needs a room or
equipment also takes a free one (careloop.scheduling.resources), guarded the same way
by a second constraint over the resource's time (migration 0005). SQLite has no such
constraint; there the transaction is exclusive (`exclusive_transaction`), so bookings
run one at a time and the re-check sees the winner. The loser gets `SlotTaken` with
the next free slots.

Who acts: a staff `User` (checked against the permission table), or `OnBehalf` for a
change no staff user makes: the patient, through a credential careloop has checked (a
portal session, a waitlist offer's link), or a system job (the automatic no-show
sweep). A patient acts only on their own appointments. A staff user books (or moves a
visit to) a type only when its `booking_roles` allow their role (`RoleMayNotBook`);
patients are governed by `self_bookable`, which the portal checks.

Time given back (cancel, reschedule, no-show) is noted for the waitlist in the same
transaction (careloop.scheduling.waitlist `waitlist_note_freed`) and offered after the
commit; a sweep takes up whatever a crash left.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from django.apps import apps
from django.db import IntegrityError, transaction
from django.db.models.functions import Coalesce
from django_tasks_db.utils import exclusive_transaction

from careloop.core.clock import now
from careloop.core.errors import PermissionDenied
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.scheduling.models import (
    HOLDING_STATUSES,
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
)
from careloop.scheduling.resources import resource_pick, resources_all_held
from careloop.scheduling.slots import LONGEST, Slot, slots_search
from careloop.security.audit import audit_record
from careloop.security.models import Role, User
from careloop.security.permissions import Actor, Op, Resource, require

ALTERNATIVES = 5
ALTERNATIVE_DAYS = 14
EXCLUSION = "appt_no_double_booking"
RESOURCE_EXCLUSION = "appt_no_resource_double_booking"
# Statuses from which each change may happen.
OPEN = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
ARRIVED = (*OPEN, AppointmentStatus.CHECKED_IN)


class SlotUnavailable(Exception):  # noqa: N818 - the words the front desk uses
    """The time asked for cannot be booked; `alternatives` are the next free slots."""

    def __init__(self, message: str, alternatives: list[Slot]) -> None:
        super().__init__(message)
        self.alternatives = alternatives


class SlotTaken(SlotUnavailable):
    """Someone else holds (or just took) the provider's time, or every room (or piece
    of equipment) the visit needs."""


class RoleMayNotBook(Exception):  # noqa: N818 - reads as the sentence it raises
    """The staff user's role is not one the appointment type lets book it
    (`AppointmentType.booking_roles`). The message names the type and the roles, never
    a patient."""


@dataclass(frozen=True)
class OnBehalf:
    """A change no staff user makes: `kind` "patient" (`id` the patient's, acting on
    their own appointment through a checked credential) or "system" (`id` the job)."""

    kind: Literal["patient", "system"]
    id: str


Who = Actor | OnBehalf


class AppointmentStateError(Exception):
    """The appointment's status does not allow the change (e.g. cancelling a visit
    that has been completed)."""


def appointment_book(
    *,
    actor: Who,
    patient: Patient,
    appointment_type: AppointmentType,
    provider: Provider,
    location: Location,
    start: datetime.datetime,
    source: str = "careloop",
) -> Appointment:
    """Book `patient` into the free slot at `start`; `SlotTaken` when the time is held
    (or was taken while we looked), `SlotUnavailable` when it is not an open slot."""
    user = appointments_authorise(actor, patient.pk)
    _check_booking_role(user, appointment_type, patient.pk)
    if start.tzinfo is None:
        raise ValueError("a booking's start must be an aware datetime")
    try:
        with exclusive_transaction():
            appointment = _claim(
                patient=patient,
                appointment_type=appointment_type,
                provider=provider,
                location=location,
                start=start,
                source=source,
            )
            _record(user, appointment, "appointment.book", "Appointment booked")
            _booked(appointment)
            return appointment
    except IntegrityError as lost:
        if not _lost_race(lost):
            raise
        raise _taken(appointment_type, provider, location, start) from None


def appointment_reschedule(
    *,
    actor: Who,
    appointment: Appointment,
    provider: Provider | None = None,
    location: Location | None = None,
    start: datetime.datetime,
) -> Appointment:
    """Move the appointment to another free slot: the old row is cancelled and a new one
    booked (pointing back at it) in one transaction, so the old time is free for the
    new booking and journeys see a fresh booking."""
    user = appointments_authorise(actor, appointment.patient_id)
    provider = provider or appointment.provider
    location = location or appointment.location
    kind = appointment.appointment_type
    # A move books the type anew.
    _check_booking_role(user, kind, appointment.patient_id)
    try:
        with exclusive_transaction():
            old = _locked(appointment, OPEN, "reschedule")
            old.status = AppointmentStatus.CANCELLED
            old.save(update_fields=["status"])
            new = _claim(
                patient=old.patient,
                appointment_type=kind,
                provider=provider,
                location=location,
                start=start,
                source=old.source,
                rescheduled_from=old,
            )
            _record(user, new, "appointment.reschedule", "Appointment rescheduled")
            _booked(new)
            _freed(old)
            return new
    except IntegrityError as lost:
        if not _lost_race(lost):
            raise
        raise _taken(kind, provider, location, start) from None


def appointment_cancel(*, actor: Who, appointment: Appointment) -> Appointment:
    """Cancel; the provider's time is free again at once."""
    return _change(actor, appointment, OPEN, AppointmentStatus.CANCELLED, "appointment.cancel")


def appointment_check_in(*, actor: Who, appointment: Appointment) -> Appointment:
    return _change(actor, appointment, OPEN, AppointmentStatus.CHECKED_IN, "appointment.check_in")


def appointment_complete(*, actor: Who, appointment: Appointment) -> Appointment:
    return _change(actor, appointment, ARRIVED, AppointmentStatus.FULFILLED, "appointment.complete")


def appointment_no_show(*, actor: Who, appointment: Appointment) -> Appointment:
    return _change(actor, appointment, OPEN, AppointmentStatus.NO_SHOW, "appointment.no_show")


def _change(
    actor: Who,
    appointment: Appointment,
    allowed_from: tuple[str, ...],
    status: AppointmentStatus,
    action: str,
) -> Appointment:
    user = appointments_authorise(actor, appointment.patient_id)
    with exclusive_transaction():
        held = _locked(appointment, allowed_from, action.split(".")[1])
        held.status = status
        held.save(update_fields=["status"])
        _record(user, held, action, f"Appointment {status.label.lower()}")
        if status not in HOLDING_STATUSES:
            _freed(held)
        return held


def appointments_authorise(actor: Who, patient_id: uuid.UUID) -> User | OnBehalf:
    """The staff user the table allows, or the `OnBehalf` actor when it may act on
    this patient's appointments (a patient only on their own)."""
    if not isinstance(actor, OnBehalf):
        return require(actor, Op.WRITE, Resource.APPOINTMENTS, patient_id=patient_id)
    if actor.kind == "system" or (actor.kind == "patient" and actor.id == str(patient_id)):
        return actor
    audit_record(
        action="access.denied",
        actor_kind=actor.kind,
        actor_id=actor.id,
        patient_id=patient_id,
        resource_type=str(Resource.APPOINTMENTS),
        fields=(str(Op.WRITE),),
        outcome="denied",
    )
    raise PermissionDenied("a patient may change only their own appointments")


def _check_booking_role(
    who: User | OnBehalf, appointment_type: AppointmentType, patient_id: uuid.UUID
) -> None:
    """Refuse (audited, then `RoleMayNotBook`) a staff user whose role the type's
    `booking_roles` leave out. Patients and system jobs are not staff: not checked."""
    if not isinstance(who, User) or who.role == Role.PATIENT:
        return
    if appointment_type.bookable_by(who.role):
        return
    audit_record(
        action="access.denied",
        actor=who,
        patient_id=patient_id,
        resource_type="AppointmentType",
        resource_id=appointment_type.pk,
        fields=("booking_roles",),
        outcome="denied",
    )
    allowed = ", ".join(
        Role(code).label if code in Role.values else code for code in appointment_type.booking_roles
    )
    raise RoleMayNotBook(
        f"{Role(who.role).label} staff may not book {appointment_type.name} visits "
        f"(booked by: {allowed})"
    )


def _lost_race(error: IntegrityError) -> bool:
    """Did the insert lose to a concurrent booking of the provider's or the resource's
    time (one of the exclusion constraints)?"""
    return EXCLUSION in str(error) or RESOURCE_EXCLUSION in str(error)


def _freed(appointment: Appointment) -> None:
    """Note the time given back for the waitlist, in this transaction; offer it once
    committed (the sweep retries what a crash left)."""
    from careloop.scheduling.waitlist import waitlist_note_freed, waitlist_offer_freed

    if waitlist_note_freed(appointment=appointment):
        transaction.on_commit(lambda: waitlist_offer_freed(appointment_id=appointment.pk))


def _booked(appointment: Appointment) -> None:
    """Once committed, ask the patient for the forms the visit's type requires
    (careloop.intake). Robust: the booking stands if that fails, and the portal asks
    again when the patient opens it."""
    if not apps.is_installed("careloop.intake"):
        return
    from careloop.intake.services import visit_forms_assign

    transaction.on_commit(lambda: visit_forms_assign(appointment_id=appointment.pk), robust=True)


def _locked(appointment: Appointment, allowed_from: tuple[str, ...], verb: str) -> Appointment:
    """The appointment, row-locked, when its current status allows `verb`."""
    held = (
        Appointment.objects.select_for_update()
        .select_related("patient", "appointment_type")
        .get(pk=appointment.pk)
    )
    if held.status not in allowed_from:
        label = AppointmentStatus(held.status).label.lower()
        verb = verb.replace("_", " ")
        raise AppointmentStateError(f"cannot {verb} an appointment that is {label}")
    return held


def _claim(
    *,
    patient: Patient,
    appointment_type: AppointmentType,
    provider: Provider,
    location: Location,
    start: datetime.datetime,
    source: str,
    rescheduled_from: Appointment | None = None,
) -> Appointment:
    """Insert the booking when `start` is a free slot as of now, inside the caller's
    transaction."""
    if appointment_type.per_day_cap is not None:
        # Two bookings of different times could each see the cap not yet reached;
        # holding the provider's row makes capped types book one at a time per
        # provider (the exclusion constraint covers only overlaps).
        Provider.objects.select_for_update().filter(pk=provider.pk).first()
    day = start.astimezone(ZoneInfo(location.time_zone)).date()
    free = slots_search(
        appointment_type=appointment_type,
        providers=[provider],
        locations=[location],
        start_date=day,
        end_date=day,
    )
    slot = next((s for s in free if s.start == start), None)
    buffer = datetime.timedelta(minutes=appointment_type.buffer_minutes)
    claim_end = start + datetime.timedelta(minutes=appointment_type.minutes) + buffer
    kind = appointment_type.resource_kind
    if slot is None:
        if _held(provider, start, appointment_type) or (
            kind and resources_all_held(kind=kind, location=location, start=start, until=claim_end)
        ):
            raise _taken(appointment_type, provider, location, start)
        raise SlotUnavailable(
            "that time is not an open slot for this appointment type",
            _next_free(appointment_type, provider, location, start),
        )
    resource = None
    if kind:
        resource = resource_pick(kind=kind, location=location, start=start, until=claim_end)
        if resource is None:
            # Free a moment ago, but another booking has just locked the last one.
            raise _taken(appointment_type, provider, location, start)
    appointment = Appointment(
        patient=patient,
        provider=provider,
        location=location,
        appointment_type=appointment_type,
        start=slot.start,
        end=slot.end,
        busy_until=slot.end + buffer,
        resource=resource,
        status=AppointmentStatus.BOOKED,
        source=source,
        created_at=now(),
        rescheduled_from=rescheduled_from,
    )
    appointment.save(force_insert=True)
    return appointment


def _held(provider: Provider, start: datetime.datetime, kind: AppointmentType) -> bool:
    """Does a booking hold any of the time a visit of `kind` at `start` would claim?"""
    claim_end = start + datetime.timedelta(minutes=kind.minutes + kind.buffer_minutes)
    return (
        Appointment.objects.annotate(claimed_until=Coalesce("busy_until", "end"))
        .filter(
            provider=provider,
            status__in=HOLDING_STATUSES,
            start__lt=claim_end,
            start__gte=start - LONGEST,
            claimed_until__gt=start,
        )
        .exists()
    )


def _taken(
    kind: AppointmentType, provider: Provider, location: Location, start: datetime.datetime
) -> SlotTaken:
    return SlotTaken(
        "that time was just taken; here are the next free times",
        _next_free(kind, provider, location, start),
    )


def _next_free(
    kind: AppointmentType, provider: Provider, location: Location, start: datetime.datetime
) -> list[Slot]:
    """The first free slots with the same provider and place from `start` on, else the
    first ones in the fortnight."""
    day = start.astimezone(ZoneInfo(location.time_zone)).date()
    free = slots_search(
        appointment_type=kind,
        providers=[provider],
        locations=[location],
        start_date=day,
        end_date=day + datetime.timedelta(days=ALTERNATIVE_DAYS),
    )
    later = [slot for slot in free if slot.start >= start]
    return (later or free)[:ALTERNATIVES]


def _record(who: User | OnBehalf, appointment: Appointment, action: str, summary: str) -> None:
    """The timeline entry and audit event of a change (coded words only: no PHI)."""
    user = who if isinstance(who, User) else None
    by: dict[str, object] = {"actor": user}
    if isinstance(who, OnBehalf):
        by = {"actor_kind": who.kind, "actor_id": who.id}
        summary += " by the patient" if who.kind == "patient" else " automatically"
    timeline_add(
        patient=appointment.patient,
        kind=TimelineKind.APPOINTMENT,
        summary=summary,
        actor=user,
        ref_type="appointment",
        ref_id=str(appointment.pk),
    )
    audit_record(
        action=action,
        **by,  # type: ignore[arg-type]
        patient_id=appointment.patient_id,
        resource_type="Appointment",
        resource_id=str(appointment.pk),
        fields=["status"],
    )
