"""The staff calendar's read paths: day and week grids, a provider's agenda, one
appointment.

A grid is rows of 15 minutes (local wall-clock time in the location's zone) by columns
(providers on one day, or one provider on seven days). Each appointment sits in the
cell of its start; its length is a number of rows for the page to draw. Names appear
only for patients inside the actor's scope (careloop.security.scope), and every grid
or agenda that shows them is audited as a patient list.
"""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet

from careloop.core.errors import NotFound
from careloop.patients.models import Patient
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
    WeeklyAvailability,
)
from careloop.security.audit import audit_record
from careloop.security.permissions import Actor, Op, Resource, actor_allowed, require
from careloop.security.scope import patient_scope

STEP = datetime.timedelta(minutes=15)
# The hours a grid always shows; earlier or later appointments widen it.
DAY_OPENS = datetime.time(7)
DAY_CLOSES = datetime.time(19)
WEEK = 7
# Colour classes for appointment types (the page names the type in words too).
PALETTE = 8
# A block is drawn at most this many rows tall.
MAX_ROWS = 16
# Any date: the grid's rows are wall-clock times, compared on one day.
_DAY0 = datetime.date(2000, 1, 1)
# What a calendar shows of each appointment, as the audit log records it.
GRID_FIELDS = ("name", "appointment_time", "appointment_type", "appointment_status")


@dataclass(frozen=True)
class Block:
    """One appointment as the calendar draws it. `patient_name` is None when the
    patient is outside the actor's scope: the time shows as held, nothing more."""

    id: uuid.UUID
    patient_id: uuid.UUID
    patient_name: str | None
    start: datetime.datetime  # local to the grid's zone
    end: datetime.datetime
    type_code: str
    type_name: str
    type_colour: int
    status: str
    status_label: str
    provider_id: uuid.UUID
    provider_name: str
    location_name: str
    rows: int

    @property
    def movable(self) -> bool:
        """Only booked or confirmed visits may be rescheduled (booking.OPEN)."""
        return self.status in (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


@dataclass(frozen=True)
class Column:
    provider: Provider
    day: datetime.date


@dataclass
class Cell:
    column: Column
    start: datetime.datetime
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Row:
    start: datetime.datetime
    cells: list[Cell]

    @property
    def on_the_hour(self) -> bool:
        return self.start.minute == 0


@dataclass(frozen=True)
class TypeLegend:
    code: str
    name: str
    colour: int


@dataclass(frozen=True)
class Grid:
    zone: ZoneInfo
    columns: list[Column]
    rows: list[Row]
    legend: list[TypeLegend]
    shown: int


@dataclass(frozen=True)
class AgendaDay:
    day: datetime.date
    blocks: list[Block]


def calendar_locations() -> list[Location]:
    return list(Location.objects.all())


def calendar_location(*, location_id: uuid.UUID | None) -> Location:
    """The location asked for, else the first one; `NotFound` for an unknown id or a
    practice with no locations."""
    locations = Location.objects.all()
    found = locations.filter(pk=location_id).first() if location_id else locations.first()
    if found is None:
        raise NotFound
    return found


def calendar_provider(*, provider_id: uuid.UUID | None) -> Provider:
    """The provider asked for, else the first active one; `NotFound` otherwise."""
    providers = Provider.objects.select_related("location")
    if provider_id:
        found = providers.filter(pk=provider_id).first()
    else:
        found = providers.filter(active=True).first()
    if found is None:
        raise NotFound
    return found


def location_providers(location: Location) -> list[Provider]:
    """The active providers who work at `location`: based there, or with hours there."""
    with_hours = WeeklyAvailability.objects.filter(location=location).values("provider_id")
    return list(
        Provider.objects.filter(Q(location=location) | Q(pk__in=with_hours), active=True)
        .select_related("location")
        .distinct()
    )


def type_colours() -> dict[str, int]:
    """A stable colour index per appointment type (by code order)."""
    codes = AppointmentType.objects.order_by("code").values_list("code", flat=True)
    return {code: n % PALETTE for n, code in enumerate(codes)}


def calendar_day(
    *,
    actor: Actor,
    location: Location,
    providers: Sequence[Provider],
    day: datetime.date,
    show_cancelled: bool = False,
) -> Grid:
    """All `providers` side by side at `location` on its local `day`."""
    require(actor, Op.READ, Resource.APPOINTMENTS)
    zone = ZoneInfo(location.time_zone)
    columns = [Column(provider=p, day=day) for p in providers]
    first, last = _bounds(zone, day, day)
    appointments = _appointments(first, last, show_cancelled).filter(
        location=location, provider__in=[p.pk for p in providers]
    )
    grid = _grid(actor, zone, columns, appointments)
    _audit(actor, f"calendar:day:{day.isoformat()}:location={location.pk}", grid.shown)
    return grid


def calendar_week(
    *,
    actor: Actor,
    provider: Provider,
    zone: ZoneInfo,
    week_start: datetime.date,
    show_cancelled: bool = False,
) -> Grid:
    """One provider's seven days from `week_start`, at every location, in `zone`."""
    require(actor, Op.READ, Resource.APPOINTMENTS)
    days = [week_start + datetime.timedelta(days=n) for n in range(WEEK)]
    columns = [Column(provider=provider, day=d) for d in days]
    first, last = _bounds(zone, days[0], days[-1])
    appointments = _appointments(first, last, show_cancelled).filter(provider=provider)
    grid = _grid(actor, zone, columns, appointments)
    _audit(actor, f"calendar:week:{week_start.isoformat()}:provider={provider.pk}", grid.shown)
    return grid


def calendar_agenda(
    *,
    actor: Actor,
    provider: Provider,
    zone: ZoneInfo,
    first_day: datetime.date,
    days: int = WEEK,
    show_cancelled: bool = False,
) -> list[AgendaDay]:
    """One provider's appointments day by day, as a list (the phone-sized view)."""
    require(actor, Op.READ, Resource.APPOINTMENTS)
    last_day = first_day + datetime.timedelta(days=days - 1)
    first, last = _bounds(zone, first_day, last_day)
    appointments = _appointments(first, last, show_cancelled).filter(provider=provider)
    by_day: dict[datetime.date, list[Block]] = defaultdict(list)
    blocks = _blocks(actor, zone, appointments)
    for block in blocks:
        by_day[block.start.date()].append(block)
    agenda = [
        AgendaDay(day=d, blocks=by_day.get(d, []))
        for d in (first_day + datetime.timedelta(days=n) for n in range(days))
    ]
    _audit(actor, f"calendar:agenda:{first_day.isoformat()}:provider={provider.pk}", len(blocks))
    return agenda


def appointment_for_staff(*, actor: Actor, appointment_id: uuid.UUID) -> Appointment:
    """The appointment, when its patient is in the actor's scope; one `NotFound` for
    "missing" and "not yours". Not audited: the caller records what it shows."""
    require(actor, Op.READ, Resource.APPOINTMENTS)
    try:
        return (
            Appointment.objects.select_related(
                "patient",
                "provider",
                "location",
                "appointment_type",
                "rescheduled_to",
                "resource",
            )
            .filter(patient__in=Patient.objects.filter(patient_scope(actor)).values("pk"))
            .get(pk=appointment_id)
        )
    except Appointment.DoesNotExist:
        raise NotFound from None


def appointment_block(*, actor: Actor, appointment: Appointment, zone: ZoneInfo) -> Block:
    """One block, for the page to redraw after a move."""
    return _blocks(actor, zone, [appointment])[0]


def _bounds(
    zone: ZoneInfo, first: datetime.date, last: datetime.date
) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.combine(first, datetime.time.min, zone)
    end = datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time.min, zone)
    return start, end


def _appointments(
    start: datetime.datetime, end: datetime.datetime, show_cancelled: bool
) -> QuerySet[Appointment]:
    rows = Appointment.objects.filter(start__gte=start, start__lt=end).select_related(
        "patient", "provider", "location", "appointment_type"
    )
    if not show_cancelled:
        rows = rows.exclude(status=AppointmentStatus.CANCELLED)
    return rows.order_by("start", "id")


def _visible_patients(actor: Actor, patient_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    if not patient_ids or not actor_allowed(actor, Op.READ, Resource.DEMOGRAPHICS):
        return set()
    return set(
        Patient.objects.filter(patient_scope(actor), pk__in=patient_ids).values_list(
            "pk", flat=True
        )
    )


def _blocks(actor: Actor, zone: ZoneInfo, appointments: Iterable[Appointment]) -> list[Block]:
    rows = list(appointments)
    visible = _visible_patients(actor, {a.patient_id for a in rows})
    colours = type_colours()
    blocks = []
    for a in rows:
        name = None
        if a.patient_id in visible:
            name = f"{a.patient.family_name}, {a.patient.given_name}"
        length = max(1, -(-(a.end - a.start) // STEP))
        blocks.append(
            Block(
                id=a.pk,
                patient_id=a.patient_id,
                patient_name=name,
                start=a.start.astimezone(zone),
                end=a.end.astimezone(zone),
                type_code=a.appointment_type.code,
                type_name=a.appointment_type.name,
                type_colour=colours.get(a.appointment_type.code, 0),
                status=a.status,
                status_label=AppointmentStatus(a.status).label,
                provider_id=a.provider_id,
                provider_name=a.provider.display_name,
                location_name=a.location.name,
                rows=min(length, MAX_ROWS),
            )
        )
    return blocks


def _floor(moment: datetime.datetime) -> datetime.time:
    minute = moment.minute - moment.minute % 15
    return datetime.time(moment.hour, minute)


def _grid(
    actor: Actor, zone: ZoneInfo, columns: list[Column], appointments: QuerySet[Appointment]
) -> Grid:
    blocks = _blocks(actor, zone, appointments)
    begin = datetime.datetime.combine(_DAY0, DAY_OPENS)
    finish = datetime.datetime.combine(_DAY0, DAY_CLOSES)
    for block in blocks:
        begin = min(begin, datetime.datetime.combine(_DAY0, _floor(block.start)))
        if block.end.date() != block.start.date():
            finish = datetime.datetime.combine(_DAY0 + datetime.timedelta(days=1), DAY_OPENS.min)
        else:
            finish = max(finish, datetime.datetime.combine(_DAY0, block.end.time()))
    times: list[datetime.time] = []
    moment = begin
    while moment < finish:
        times.append(moment.time())
        moment += STEP
    placed: dict[tuple[uuid.UUID, datetime.date, datetime.time], list[Block]] = defaultdict(list)
    for block in blocks:
        placed[(block.provider_id, block.start.date(), _floor(block.start))].append(block)
    rows = []
    for wall in times:
        cells = []
        for column in columns:
            start = datetime.datetime.combine(column.day, wall, zone)
            key = (column.provider.pk, column.day, wall)
            cells.append(Cell(column=column, start=start, blocks=placed.get(key, [])))
        if cells:
            rows.append(Row(start=cells[0].start, cells=cells))
    return Grid(
        zone=zone,
        columns=columns,
        rows=rows,
        legend=_legend(blocks),
        shown=len(blocks),
    )


def _legend(blocks: list[Block]) -> list[TypeLegend]:
    seen = {b.type_code: TypeLegend(b.type_code, b.type_name, b.type_colour) for b in blocks}
    return sorted(seen.values(), key=lambda t: t.name)


def _audit(actor: Actor, resource_id: str, shown: int) -> None:
    audit_record(
        action="patient.list",
        actor=actor,
        resource_type="Appointment",
        resource_id=f"{resource_id}:shown={shown}",
        fields=GRID_FIELDS,
    )
