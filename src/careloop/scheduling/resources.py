"""Which room or piece of equipment a booking takes (`AppointmentType.resource_kind`).

The booking service calls these inside its transaction, after the slot search found
the time free. `resource_pick` locks the resource it returns and skips any another
booking has locked, so simultaneous bookings at one location spread over its rooms
instead of all reaching for the first; whichever still lands on a room that is taken
meanwhile is refused by the exclusion constraint `appt_no_resource_double_booking`
(PostgreSQL, migration 0005). On SQLite bookings run one at a time (the exclusive
transaction) and the locks are no-ops.
"""

from __future__ import annotations

import datetime

from django.db.models import QuerySet
from django.db.models.functions import Coalesce

from careloop.scheduling.models import HOLDING_STATUSES, Appointment, Location, Resource
from careloop.scheduling.slots import LONGEST


def resource_pick(
    *, kind: str, location: Location, start: datetime.datetime, until: datetime.datetime
) -> Resource | None:
    """A free active resource of `kind` at `location` for `[start, until)`, locked for
    this transaction (first by name); None when none is free."""
    free = _free(kind, location, start, until).order_by("name", "pk")
    return free.select_for_update(skip_locked=True, no_key=True).first()


def resources_all_held(
    *, kind: str, location: Location, start: datetime.datetime, until: datetime.datetime
) -> bool:
    """Has `location` resources of `kind`, all held at some point of `[start, until)`?
    (None at all is not "held": the type cannot be booked there.)"""
    here = Resource.objects.filter(active=True, kind=kind, location=location)
    return here.exists() and not _free(kind, location, start, until).exists()


def _free(
    kind: str, location: Location, start: datetime.datetime, until: datetime.datetime
) -> QuerySet[Resource]:
    held = (
        Appointment.objects.annotate(claimed_until=Coalesce("busy_until", "end"))
        .filter(
            resource__location=location,
            resource__kind=kind,
            status__in=HOLDING_STATUSES,
            start__lt=until,
            start__gte=start - LONGEST,
            claimed_until__gt=start,
        )
        .values("resource_id")
    )
    return Resource.objects.filter(active=True, kind=kind, location=location).exclude(pk__in=held)
