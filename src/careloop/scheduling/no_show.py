"""Automatic no-shows: a visit still booked or confirmed `SCHEDULING_AUTO_NO_SHOW_MINUTES`
after its start, with no check-in, is marked no-show through the booking service, so it
gets the timeline entry, the audit event (actor: the system job) and the no-show
journey like one a person marked. Only careloop's own bookings: the EHR reports its
own no-shows (SIU S26, FHIR status), and careloop does not overwrite them. Off (None)
by default: many practices check patients
in only in the EHR, and careloop would then mark everyone.
"""

from __future__ import annotations

import datetime

from django.conf import settings

from careloop.core.clock import now
from careloop.scheduling.booking import (
    OPEN,
    AppointmentStateError,
    OnBehalf,
    appointment_no_show,
)
from careloop.scheduling.models import Appointment

JOB = OnBehalf("system", "scheduling.no_show")
# Visits older than this are left alone: switching the setting on must not rewrite
# last year's unreconciled schedule.
LOOKBACK = datetime.timedelta(days=2)


def no_show_sweep(*, at: datetime.datetime | None = None, limit: int = 500) -> int:
    """Mark the overdue visits no-show; how many were marked (0 when switched off)."""
    minutes = settings.SCHEDULING_AUTO_NO_SHOW_MINUTES
    if minutes is None:
        return 0
    at = at or now()
    cutoff = at - datetime.timedelta(minutes=minutes)
    overdue = Appointment.objects.filter(
        source="careloop", status__in=OPEN, start__lte=cutoff, start__gt=cutoff - LOOKBACK
    ).order_by("start", "id")[:limit]
    marked = 0
    for appointment in overdue:
        try:
            appointment_no_show(actor=JOB, appointment=appointment)
        except AppointmentStateError:  # checked in (or cancelled) meanwhile
            continue
        marked += 1
    return marked
