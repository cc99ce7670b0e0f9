"""Conflicts between what the EHR reports and what careloop booked, for staff to settle.

The EHR's appointments and careloop's are one list (`Appointment`, `source` says whose).
careloop never books over time an EHR row holds (the booking check sees it), but the
EHR can report a visit later that overlaps a careloop booking of the same provider, or
report a change to an appointment careloop booked. Neither is applied silently:

- `conflicts_detect(appointment_ids=)` is called by each EHR write path (HL7 SIU,
  FHIR Appointment records, the bulk loader) with the rows it wrote: an EHR row that
  holds time overlapping a careloop booking's claimed time opens an `overlap`
  conflict; an EHR row that stopped holding time clears its open overlaps.
- `conflict_guard_ehr_change(appointment=, values=)` is asked by an EHR write path
  before it changes a row: for a careloop booking it records an `ehr_changed` conflict
  with what the EHR proposed and answers True, and the caller leaves the row alone.
- `conflict_resolve(actor=, conflict=, action=)`: keep careloop's booking and cancel
  the EHR's row, keep the EHR's and cancel careloop's (through the booking service, so
  the waitlist hears of the freed time), accept the EHR's change, or mark resolved.
"""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.functions import Coalesce

from careloop.core.clock import now
from careloop.patients.models import TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.scheduling.booking import AppointmentStateError, appointment_cancel
from careloop.scheduling.models import (
    HOLDING_STATUSES,
    Appointment,
    AppointmentConflict,
    AppointmentStatus,
    ConflictKind,
)
from careloop.scheduling.slots import LONGEST
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Op, Resource, require

CARELOOP = "careloop"
BATCH = 500
OPEN = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
RESOLUTIONS = {
    "keep_careloop": "Keep careloop's booking, cancel the EHR's",
    "keep_ehr": "Keep the EHR's, cancel careloop's booking",
    "accept_ehr": "Apply the EHR's change to careloop's booking",
    "resolved": "Mark resolved (settled elsewhere)",
}


class ConflictInvalid(ValueError):
    """A resolution the conflict does not allow; the message is for staff."""


def conflicts_detect(*, appointment_ids: Iterable[uuid.UUID]) -> int:
    """Open an overlap conflict for each EHR row among `appointment_ids` that holds time
    a careloop booking of the same provider claims; clear the open ones of rows that no
    longer hold time. How many were opened. A few queries per 500 rows (the bulk loader
    passes whole batches)."""
    ids = list(appointment_ids)
    opened = 0
    for first in range(0, len(ids), BATCH):
        rows = list(
            Appointment.objects.filter(pk__in=ids[first : first + BATCH]).exclude(source=CARELOOP)
        )
        released = [row.pk for row in rows if row.status not in HOLDING_STATUSES]
        if released:
            AppointmentConflict.objects.filter(
                other_id__in=released, kind=ConflictKind.OVERLAP, resolved_at__isnull=True
            ).update(resolved_at=now(), resolution="cleared")
        holding = [row for row in rows if row.status in HOLDING_STATUSES]
        for row, booking in _overlaps(holding):
            opened += _open(ConflictKind.OVERLAP, booking, row)
    return opened


def _overlaps(rows: list[Appointment]) -> list[tuple[Appointment, Appointment]]:
    """(EHR row, careloop booking) pairs whose times overlap, same provider."""
    if not rows:
        return []
    bookings = (
        Appointment.objects.annotate(claimed_until=Coalesce("busy_until", "end"))
        .filter(
            provider_id__in={row.provider_id for row in rows},
            source=CARELOOP,
            status__in=HOLDING_STATUSES,
            start__lt=max(row.end for row in rows),
            start__gte=min(row.start for row in rows) - LONGEST,
        )
        .order_by("start")
    )
    by_provider: dict[uuid.UUID, list[Appointment]] = defaultdict(list)
    for booking in bookings:
        by_provider[booking.provider_id].append(booking)
    return [
        (row, booking)
        for row in rows
        for booking in by_provider[row.provider_id]
        if booking.start < row.end and (booking.busy_until or booking.end) > row.start
    ]


def _open(kind: ConflictKind, booking: Appointment, other: Appointment, **proposed: Any) -> int:
    if AppointmentConflict.objects.filter(
        kind=kind, appointment=booking, other=other, resolved_at__isnull=True
    ).exists():
        return 0
    try:
        with transaction.atomic():
            conflict = AppointmentConflict.objects.create(
                kind=kind, appointment=booking, other=other, detected_at=now(), **proposed
            )
    except IntegrityError:  # a concurrent ingest of the same message opened it
        return 0
    audit_record(
        action="conflict.detect",
        actor_kind="system",
        actor_id="scheduling.conflicts",
        patient_id=booking.patient_id,
        resource_type="appointment_conflict",
        resource_id=str(conflict.pk),
        fields=("start", "end", "provider"),
    )
    return 1


def conflict_guard_ehr_change(*, appointment: Appointment, values: Mapping[str, Any]) -> bool:
    """Before an EHR write path changes `appointment`: True (and an `ehr_changed`
    conflict holding the proposal) when it is careloop's booking and the values differ;
    the caller must then leave it alone."""
    if appointment.source != CARELOOP:
        return False
    start, end = values.get("start", appointment.start), values.get("end", appointment.end)
    # No status (an S14 "modified") keeps careloop's; booked and confirmed are alike.
    status = values.get("status") or appointment.status
    if status in OPEN and appointment.status in OPEN:
        status = appointment.status
    provider_id = values.get("provider_id", appointment.provider_id)
    if "provider" in values:
        provider_id = values["provider"].pk
    same = (start, end, status, provider_id) == (
        appointment.start,
        appointment.end,
        appointment.status,
        appointment.provider_id,
    )
    if same:
        return True
    AppointmentConflict.objects.filter(
        kind=ConflictKind.EHR_CHANGED, appointment=appointment, resolved_at__isnull=True
    ).update(resolved_at=now(), resolution="superseded")
    _open(
        ConflictKind.EHR_CHANGED,
        appointment,
        appointment,
        proposed_start=start,
        proposed_end=end,
        proposed_status=str(status),
        proposed_provider_id=provider_id,
    )
    return True


def conflicts_open(*, actor: User) -> list[AppointmentConflict]:
    """The open conflicts, oldest first (staff page); the read is audited by the view."""
    require(actor, Op.READ, Resource.APPOINTMENTS)
    return list(
        AppointmentConflict.objects.filter(resolved_at__isnull=True)
        .select_related(
            "appointment__patient",
            "appointment__provider",
            "appointment__appointment_type",
            "other__patient",
            "other__appointment_type",
            "proposed_provider",
        )
        .order_by("detected_at", "id")
    )


def conflict_resolve(
    *, actor: User, conflict: AppointmentConflict, action: str
) -> AppointmentConflict:
    """Settle a conflict (`action` one of `RESOLUTIONS`); the cancellations go through
    careloop's booking service or, for the EHR's row, mark it cancelled here (the EHR
    is told by staff in the EHR: careloop does not write back)."""
    user = require(
        actor, Op.WRITE, Resource.APPOINTMENTS, patient_id=conflict.appointment.patient_id
    )
    if action not in RESOLUTIONS:
        raise ConflictInvalid("Choose how to resolve the conflict.")
    if action == "accept_ehr" and conflict.kind != ConflictKind.EHR_CHANGED:
        raise ConflictInvalid("Only an EHR change can be applied.")
    if action in ("keep_careloop", "keep_ehr") and conflict.kind != ConflictKind.OVERLAP:
        raise ConflictInvalid("Keep one of two appointments only when they overlap.")
    with transaction.atomic():
        held = AppointmentConflict.objects.select_for_update().get(pk=conflict.pk)
        if held.resolved_at is not None:
            raise ConflictInvalid("This conflict was already resolved.")
        if action == "keep_careloop":
            _cancel_ehr_row(user, held.other)
        elif action == "keep_ehr":
            try:
                appointment_cancel(actor=user, appointment=held.appointment)
            except AppointmentStateError as error:
                raise ConflictInvalid(str(error)) from None
        elif action == "accept_ehr":
            _apply_proposal(user, held)
        held.resolved_at, held.resolved_by, held.resolution = now(), user, action
        held.save(update_fields=["resolved_at", "resolved_by", "resolution"])
        audit_record(
            action="conflict.resolve",
            actor=user,
            patient_id=held.appointment.patient_id,
            resource_type="appointment_conflict",
            resource_id=str(held.pk),
            fields=("resolution",),
        )
    return held


def _cancel_ehr_row(user: User, row: Appointment) -> None:
    changed = Appointment.objects.filter(pk=row.pk, status__in=HOLDING_STATUSES).update(
        status=AppointmentStatus.CANCELLED
    )
    if changed:
        _note(user, row, "Appointment from the EHR cancelled in careloop (conflict)")


def _apply_proposal(user: User, conflict: AppointmentConflict) -> None:
    row = Appointment.objects.select_for_update().get(pk=conflict.appointment_id)
    if conflict.proposed_start is not None and conflict.proposed_end is not None:
        row.start, row.end = conflict.proposed_start, conflict.proposed_end
        buffer = datetime.timedelta(minutes=row.appointment_type.buffer_minutes)
        row.busy_until = row.end + buffer
    if conflict.proposed_status:
        row.status = conflict.proposed_status
    if conflict.proposed_provider_id is not None:
        row.provider_id = conflict.proposed_provider_id
    try:
        with transaction.atomic():
            row.save(update_fields=["start", "end", "busy_until", "status", "provider"])
    except IntegrityError:  # PostgreSQL's no-double-booking constraint
        raise ConflictInvalid("The EHR's time overlaps another careloop booking.") from None
    _note(user, row, "Appointment changed to the EHR's version (conflict)")


def _note(user: User, row: Appointment, summary: str) -> None:
    timeline_add(
        patient=row.patient,
        kind=TimelineKind.APPOINTMENT,
        summary=summary,
        actor=user,
        ref_type="appointment",
        ref_id=str(row.pk),
    )
    audit_record(
        action="conflict.resolve",
        actor=user,
        patient_id=row.patient_id,
        resource_type="Appointment",
        resource_id=str(row.pk),
        fields=("status", "start", "end"),
    )
