"""Free slots: when a type of appointment could be booked, with whom, where.

Set-based: one query each for the providers, the weekly hours, the exceptions, the
locations' zones and the appointments that hold time in the window (and, for a type
that needs a room or equipment, one for the resources of that kind and one for the
appointments holding them); the slots are then computed in Python. Hours are
wall-clock times in the location's zone, so a 09:00 start stays 09:00 local across a
daylight-saving change; a window that spans the change is as long as the clock says it
really is.

A slot claims `[start, end + buffer)` of the provider's time (and of one free resource
of the kind the type needs, at the slot's location), the same interval the booking
writes as `busy_until` and the database's exclusion constraints compare.
"""

from __future__ import annotations

import bisect
import datetime
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Func, IntegerField, Q
from django.db.models.functions import Coalesce

from careloop.core.clock import now
from careloop.scheduling.models import (
    HOLDING_STATUSES,
    Appointment,
    AppointmentType,
    AvailabilityException,
    ExceptionKind,
    Location,
    Provider,
    Resource,
    WeeklyAvailability,
)

UTC = datetime.UTC
DAY = datetime.timedelta(days=1)
# Local opening hours on one day.
Hours = tuple[datetime.time, datetime.time]
# A local blocked interval; `None` as the end is the end of the day.
Span = tuple[datetime.time, datetime.time | None]
WHOLE_DAY: Span = (datetime.time.min, None)
# No visit (with its buffer) holds a provider longer than this.
LONGEST = datetime.timedelta(hours=24)


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    """A bookable time: UTC instants, with the provider and location it is for."""

    start: datetime.datetime
    end: datetime.datetime
    provider_id: uuid.UUID
    location_id: uuid.UUID


class Epoch(Func):
    """A datetime column as whole seconds since 1970 (UTC). Held time is read this way
    because parsing thousands of timestamps in the driver was most of a search's time;
    appointments start and end on whole seconds."""

    output_field = IntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::bigint", **extra
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django stores SQLite datetimes as UTC text, which julianday reads; rounded to
        # the second, as the day fraction is not exact.
        template = "CAST(ROUND((julianday(%(expressions)s) - 2440587.5) * 86400) AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, **extra)


@dataclass(slots=True)
class _Busy:
    """A provider's held time in epoch seconds, sorted by start, with a running maximum
    of the ends so that "does anything overlap [s, e)?" is one bisection (EHR rows may
    overlap)."""

    starts: list[int] = field(default_factory=list)
    max_ends: list[int] = field(default_factory=list)

    def overlaps(self, start: datetime.datetime, end: datetime.datetime) -> bool:
        before = bisect.bisect_left(self.starts, int(end.timestamp()))
        return before > 0 and self.max_ends[before - 1] > int(start.timestamp())


def _busy_by(rows: Iterable[tuple[uuid.UUID, int, int]]) -> dict[uuid.UUID, _Busy]:
    """(key, start, end) rows, sorted by start, as each key's `_Busy`."""
    busy: dict[uuid.UUID, _Busy] = defaultdict(_Busy)
    for key, start, until in rows:
        held = busy[key]
        held.starts.append(start)
        held.max_ends.append(max(until, held.max_ends[-1]) if held.max_ends else until)
    return busy


@dataclass(frozen=True, slots=True)
class _Rooms:
    """The active resources of one kind by location, and the time each is held."""

    at: dict[uuid.UUID, list[uuid.UUID]]
    busy: dict[uuid.UUID, _Busy]

    def free(
        self, location_id: uuid.UUID, start: datetime.datetime, end: datetime.datetime
    ) -> bool:
        return any(
            not self.busy.get(resource_id, _FREE).overlaps(start, end)
            for resource_id in self.at.get(location_id, ())
        )


_FREE = _Busy()


def slots_search(
    *,
    appointment_type: AppointmentType,
    providers: Iterable[Provider | uuid.UUID] | None = None,
    locations: Iterable[Location | uuid.UUID] | None = None,
    start_date: datetime.date,
    end_date: datetime.date,
    at: datetime.datetime | None = None,
) -> list[Slot]:
    """Free slots of `appointment_type` on the local dates `start_date`..`end_date`
    (inclusive), by start, honouring the type's lead time, horizon,
    buffer and per-day cap as of `at` (default: now)."""
    at = at or now()
    length = datetime.timedelta(minutes=appointment_type.minutes)
    buffer = datetime.timedelta(minutes=appointment_type.buffer_minutes)
    earliest = at + datetime.timedelta(minutes=appointment_type.lead_minutes)
    latest = at + datetime.timedelta(days=appointment_type.horizon_days)
    provider_ids = _active_providers(providers)
    location_ids = _ids(locations) if locations is not None else None
    if not provider_ids or end_date < start_date or earliest > latest:
        return []
    weekly = _weekly(provider_ids, location_ids, start_date, end_date)
    zones = _zones()
    extras, blocks = _exceptions(provider_ids, location_ids, set(zones), start_date, end_date)
    hours: dict[tuple[uuid.UUID, uuid.UUID, datetime.date], list[Hours]] = defaultdict(list)
    for day in _dates(start_date, end_date):
        for provider_id, location_id, spans, valid in weekly.get(day.weekday(), []):
            if valid(day):
                hours[(provider_id, location_id, day)].extend(spans)
    for provider_id, location_id, day in extras:
        hours[(provider_id, location_id, day)].extend(extras[(provider_id, location_id, day)])
    if not hours:
        return []
    # From the first local midnight to the last, in the zones the hours are in, plus
    # the buffer: every claim a slot could make lies inside.
    used = {zones[location_id] for (_, location_id, _) in hours}
    window = (
        min(datetime.datetime.combine(start_date, datetime.time.min, z) for z in used),
        max(datetime.datetime.combine(end_date + DAY, datetime.time.min, z) for z in used) + buffer,
    )
    rooms = None
    if appointment_type.resource_kind:
        places = {location_id for (_, location_id, _) in hours}
        rooms = _resources_held(appointment_type.resource_kind, places, window)
        if not rooms.at:
            return []
    cap = appointment_type.per_day_cap
    busy, per_day = _held(provider_ids, window, appointment_type, zones)
    found: list[Slot] = []
    for (provider_id, location_id, day), spans in hours.items():
        if cap is not None and per_day[(provider_id, day)] >= cap:
            continue
        zone = zones[location_id]
        held = busy.get(provider_id, _Busy())
        closed = blocks.get((provider_id, location_id, day), [])
        for span in _subtract(_merge(spans), closed):
            opens, closes = _instants(day, span, zone)
            start = opens
            while start + length <= closes:
                claim = start + length + buffer
                if (
                    earliest <= start <= latest
                    and not held.overlaps(start, claim)
                    and (rooms is None or rooms.free(location_id, start, claim))
                ):
                    found.append(Slot(start, start + length, provider_id, location_id))
                start += length + buffer
    # By start; ties keep the order they were found in, which is cheaper than
    # comparing whole slots.
    found.sort(key=attrgetter("start"))
    return found


def _ids(items: Iterable[Provider | Location | uuid.UUID]) -> set[uuid.UUID]:
    return {item if isinstance(item, uuid.UUID) else item.pk for item in items}


def _active_providers(providers: Iterable[Provider | uuid.UUID] | None) -> set[uuid.UUID]:
    rows = Provider.objects.filter(active=True)
    if providers is not None:
        rows = rows.filter(pk__in=_ids(providers))
    return set(rows.values_list("pk", flat=True))


Weekly = dict[int, list[tuple[uuid.UUID, uuid.UUID, list[Hours], "_Validity"]]]


@dataclass(frozen=True, slots=True)
class _Validity:
    since: datetime.date
    until: datetime.date | None

    def __call__(self, day: datetime.date) -> bool:
        return self.since <= day and (self.until is None or day <= self.until)


def _weekly(
    provider_ids: set[uuid.UUID],
    location_ids: set[uuid.UUID] | None,
    start_date: datetime.date,
    end_date: datetime.date,
) -> Weekly:
    rows = WeeklyAvailability.objects.filter(
        Q(valid_to__isnull=True) | Q(valid_to__gte=start_date),
        provider_id__in=provider_ids,
        valid_from__lte=end_date,
    )
    if location_ids is not None:
        rows = rows.filter(location_id__in=location_ids)
    weekly: Weekly = defaultdict(list)
    for provider_id, location_id, weekday, opens, closes, since, until in rows.values_list(
        "provider_id", "location_id", "weekday", "start_time", "end_time", "valid_from", "valid_to"
    ):
        weekly[weekday].append(
            (provider_id, location_id, [(opens, closes)], _Validity(since, until))
        )
    return weekly


def _exceptions(
    provider_ids: set[uuid.UUID],
    location_ids: set[uuid.UUID] | None,
    places: set[uuid.UUID],
    start_date: datetime.date,
    end_date: datetime.date,
) -> tuple[
    dict[tuple[uuid.UUID, uuid.UUID, datetime.date], list[Hours]],
    dict[tuple[uuid.UUID, uuid.UUID, datetime.date], list[Span]],
]:
    """Extra hours and blocks by (provider, location, date). Practice-wide and
    all-location blocks are spread over the providers' and locations' keys here, so the
    slot loop looks each key up once."""
    rows = AvailabilityException.objects.filter(
        Q(provider_id__isnull=True) | Q(provider_id__in=provider_ids),
        date__gte=start_date,
        date__lte=end_date,
    ).values_list("kind", "provider_id", "location_id", "date", "start_time", "end_time")
    extras: dict[tuple[uuid.UUID, uuid.UUID, datetime.date], list[Hours]] = defaultdict(list)
    blocks: dict[tuple[uuid.UUID, uuid.UUID, datetime.date], list[Span]] = defaultdict(list)
    for kind, provider_id, location_id, day, opens, closes in rows:
        if kind == ExceptionKind.EXTRA:
            # The constraints make extra hours name a provider, a location and times.
            wanted = location_ids is None or location_id in location_ids
            if wanted and opens is not None and closes is not None:
                extras[(provider_id, location_id, day)].append((opens, closes))
            continue
        span: Span = WHOLE_DAY if opens is None else (opens, closes)
        for who in [provider_id] if provider_id else provider_ids:
            for where in [location_id] if location_id else places:
                blocks[(who, where, day)].append(span)
    return extras, blocks


def _zones() -> dict[uuid.UUID, ZoneInfo]:
    """Every location's zone: a practice has few locations, and one query is cheaper
    than working out which ones the window touches."""
    return {pk: ZoneInfo(name) for pk, name in Location.objects.values_list("pk", "time_zone")}


def _held(
    provider_ids: set[uuid.UUID],
    window: tuple[datetime.datetime, datetime.datetime],
    appointment_type: AppointmentType,
    zones: dict[uuid.UUID, ZoneInfo],
) -> tuple[dict[uuid.UUID, _Busy], dict[tuple[uuid.UUID, datetime.date], int]]:
    """Each provider's held time in the window, and (for a type with a per-day cap) how
    many of this type each provider has per local date."""
    rows = (
        Appointment.objects.annotate(claimed_until=Coalesce("busy_until", "end"))
        .filter(
            provider_id__in=provider_ids,
            status__in=HOLDING_STATUSES,
            start__lt=window[1],
            # The lower bound lets the (provider, start) index skip the provider's
            # history; a visit that began more than LONGEST before the window is over.
            start__gte=window[0] - LONGEST,
            claimed_until__gt=window[0],
        )
        .order_by("start")
    )
    busy = _busy_by(rows.values_list("provider_id", Epoch("start"), Epoch("claimed_until")))
    per_day: dict[tuple[uuid.UUID, datetime.date], int] = defaultdict(int)
    if appointment_type.per_day_cap is not None:
        # Only when there is a cap: the extra columns cost on every search.
        capped = rows.filter(appointment_type=appointment_type).values_list(
            "provider_id", "location_id", "start"
        )
        for provider_id, location_id, start in capped:
            per_day[(provider_id, start.astimezone(zones[location_id]).date())] += 1
    return busy, per_day


def _resources_held(
    kind: str, location_ids: set[uuid.UUID], window: tuple[datetime.datetime, datetime.datetime]
) -> _Rooms:
    """The active resources of `kind` at the locations, and their held time in the
    window: two queries, whatever the number of slots."""
    at: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    found = Resource.objects.filter(active=True, kind=kind, location_id__in=location_ids)
    for resource_id, location_id in found.values_list("pk", "location_id"):
        at[location_id].append(resource_id)
    if not at:
        return _Rooms({}, {})
    rows = (
        Appointment.objects.annotate(claimed_until=Coalesce("busy_until", "end"))
        .filter(
            resource_id__in=[r for ids in at.values() for r in ids],
            status__in=HOLDING_STATUSES,
            start__lt=window[1],
            start__gte=window[0] - LONGEST,
            claimed_until__gt=window[0],
        )
        .order_by("start")
        .values_list("resource_id", Epoch("start"), Epoch("claimed_until"))
    )
    return _Rooms(dict(at), _busy_by(rows))


def _dates(first: datetime.date, last: datetime.date) -> Iterable[datetime.date]:
    day = first
    while day <= last:
        yield day
        day += DAY


def _merge(hours: Sequence[Hours]) -> list[Hours]:
    """Overlapping or touching hours as one."""
    merged: list[Hours] = []
    for opens, closes in sorted(hours):
        if merged and merged[-1][1] >= opens:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return merged


def _subtract(hours: list[Hours], blocks: Sequence[Span]) -> list[Hours]:
    """`hours` without the parts any block covers."""
    for block_open, block_close in blocks:
        kept: list[Hours] = []
        for opens, closes in hours:
            if closes <= block_open or (block_close is not None and block_close <= opens):
                kept.append((opens, closes))
                continue
            if opens < block_open:
                kept.append((opens, block_open))
            if block_close is not None and block_close < closes:
                kept.append((block_close, closes))
        hours = kept
    return hours


def _instants(
    day: datetime.date, hours: Hours, zone: ZoneInfo
) -> tuple[datetime.datetime, datetime.datetime]:
    """The UTC instants of local hours on `day`. A wall time that does not exist (in
    the spring-forward gap) is read with the offset before the change, as zoneinfo
    does, which lands it just after the gap."""
    opens = datetime.datetime.combine(day, hours[0], zone)
    closes = datetime.datetime.combine(day, hours[1], zone)
    return opens.astimezone(UTC), closes.astimezone(UTC)
