#!/usr/bin/env python3
"""Benchmark scheduling: slot search and concurrent booking on a practice with 200
providers and 2 years of appointments.

The practice: 10 locations in four US zones, 200 providers each open weekdays
08:00-12:00 and 13:00-17:00, and appointments on a 30-minute grid from a year ago to a
year ahead (past days about 80% full, the next 90 days about 60%, later ones 20%; a
tenth of them reported by the EHR). Each location has three rooms; the first two
appointments at each location and time hold one each, so a procedure (a type that
needs a room) finds one room free where a provider is. Rows are written directly (COPY
on PostgreSQL, executemany on SQLite through careloop.core.bulk), not through the
booking service.

Measured:
- `slots_search` for one provider over 90 days, for 50 providers over 7 days, and (for
  the record) for 50 providers over 90 days, and for the procedure for 50 providers
  over 7 days: p50 and p99 over repeated searches;
- `appointment_book` with N concurrent clients (threads, each with its own database
  connection) all aiming at the same few hundred free slots of the next fortnight, so
  most attempts lose a race: attempts/s, bookings/s, and the number of double
  bookings afterwards (overlapping time held by two careloop bookings), which must be 0.

Each engine runs in a child process of this script on a scratch database (a SQLite
file in a temporary directory; a PostgreSQL database `careloop_bench_sched`, created
and dropped here).

    python bench/scheduling.py [--engines postgresql,sqlite] [--clients 32]
                               [--attempts 25] [--searches 100]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from audit import PG_MAINTENANCE, _db_version, _setup_django, machine

PG_DB = "careloop_bench_sched"
PROVIDERS = 200
LOCATIONS = 10
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
HOURS = ((8, 12), (13, 17))
SLOT_MINUTES = 30
PATIENTS = 300
DAYS = 365  # appointments from this many days ago to this many ahead
ROOMS = 3  # per location
ROOMS_HELD = 2  # at most this many appointments at one location and time hold a room


def _fill(days_from_today: int) -> float:
    if days_from_today < 0:
        return 0.8
    return 0.6 if days_from_today < 90 else 0.2


def build_practice(rng: random.Random) -> dict[str, Any]:
    """Locations, providers, hours, types, patients, a desk user; then 2 years of
    appointments written in bulk. Returns what the measurements need."""
    from zoneinfo import ZoneInfo

    from django.db import transaction

    from careloop.core import bulk
    from careloop.core.clock import now
    from careloop.patients.models import Patient
    from careloop.scheduling.models import (
        Appointment,
        AppointmentStatus,
        AppointmentType,
        Location,
        Provider,
        Resource,
        ResourceKind,
        WeeklyAvailability,
    )
    from careloop.security.models import Role, User

    today = now().date()
    since = today - datetime.timedelta(days=DAYS)
    locations = Location.objects.bulk_create(
        Location(name=f"Clinic {n}", time_zone=ZONES[n % len(ZONES)]) for n in range(LOCATIONS)
    )
    providers = Provider.objects.bulk_create(
        Provider(
            display_name=f"Provider {n}",
            npi=f"{1_500_000_000 + n}",
            specialty="Family medicine",
            location=locations[n % LOCATIONS],
        )
        for n in range(PROVIDERS)
    )
    WeeklyAvailability.objects.bulk_create(
        WeeklyAvailability(
            provider=p,
            location=p.location,
            weekday=day,
            start_time=datetime.time(a),
            end_time=datetime.time(b),
            valid_from=since,
        )
        for p in providers
        for day in range(5)
        for a, b in HOURS
    )
    visit = AppointmentType.objects.create(code="visit", name="Visit", minutes=SLOT_MINUTES)
    rooms = Resource.objects.bulk_create(
        Resource(location=location, name=f"Room {n}", kind=ResourceKind.ROOM)
        for location in locations
        for n in range(ROOMS)
    )
    rooms_at = {
        location.pk: [room.pk for room in rooms if room.location_id == location.pk]
        for location in locations
    }
    procedure = AppointmentType.objects.create(
        code="procedure", name="Procedure", minutes=SLOT_MINUTES, resource_kind=ResourceKind.ROOM
    )
    short = AppointmentType.objects.create(code="short", name="Short visit", minutes=20)
    desk = User.objects.create_user(username="bench-desk", password="x" * 20, role=Role.FRONT_DESK)
    for n in range(PATIENTS):
        Patient(
            given_name="Bench",
            family_name=f"Patient{n}",
            birth_date=datetime.date(1950 + n % 50, 1, 1),
            created_at=now(),
            updated_at=now(),
        ).save()
    patient_ids = list(Patient.objects.values_list("pk", flat=True))
    a = bulk.adapters()
    fields = ("id", "patient", "provider", "location", "appointment_type", "start", "end")
    fields += ("status", "source", "created_at", "busy_until", "resource")
    table = Appointment._meta.db_table
    columns = [bulk.model_field(Appointment, f).column for f in fields]
    stamp = a.dt(now() - datetime.timedelta(days=400))
    rows: list[tuple[Any, ...]] = []
    total = 0
    # Rooms taken so far at (location, start): visits on one 30-minute grid never overlap.
    taken: dict[tuple[uuid.UUID, datetime.datetime], int] = {}
    for provider in providers:
        zone = ZoneInfo(provider.location.time_zone)
        for offset in range(-DAYS, DAYS + 1):
            day = today + datetime.timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            fill = _fill(offset)
            for opens, closes in HOURS:
                for half in range((closes - opens) * 2):
                    if rng.random() >= fill:
                        continue
                    start = datetime.datetime.combine(
                        day, datetime.time(opens + half // 2, 30 * (half % 2)), zone
                    ).astimezone(datetime.UTC)
                    kind = short if rng.random() < 0.2 else visit
                    end = start + datetime.timedelta(minutes=kind.minutes)
                    ehr = rng.random() < 0.1
                    if offset < 0:
                        status = rng.choices(
                            [AppointmentStatus.FULFILLED, AppointmentStatus.NO_SHOW],
                            [0.93, 0.07],
                        )[0]
                    else:
                        status = rng.choice([AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED])
                    held = taken.get((provider.location_id, start), 0)
                    room = rooms_at[provider.location_id][held] if held < ROOMS_HELD else None
                    taken[(provider.location_id, start)] = held + 1
                    rows.append(
                        (
                            a.uid(uuid.uuid4()),
                            a.uid(rng.choice(patient_ids)),
                            a.uid(provider.pk),
                            a.uid(provider.location_id),
                            kind.pk,
                            a.dt(start),
                            a.dt(end),
                            status,
                            "ehr" if ehr else "careloop",
                            stamp,
                            None if ehr else a.dt(end),
                            None if room is None else a.uid(room),
                        )
                    )
        if len(rows) > 50_000:
            with transaction.atomic():
                bulk.insert_rows(table, columns, rows)
            total += len(rows)
            rows = []
    with transaction.atomic():
        bulk.insert_rows(table, columns, rows)
    total += len(rows)
    return {
        "today": today,
        "visit": visit,
        "procedure": procedure,
        "desk": desk,
        "providers": providers,
        "patients": patient_ids,
        "appointments": total,
    }


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
        f"({len(ordered)} searches)"
    )


def measure_search(
    practice: dict[str, Any],
    rng: random.Random,
    searches: int,
    providers: int,
    days: int,
    kind: str = "visit",
) -> tuple[str, int]:
    from careloop.scheduling.slots import slots_search

    first = practice["today"] + datetime.timedelta(days=1)
    last = first + datetime.timedelta(days=days - 1)
    samples: list[float] = []
    found = 0
    for _ in range(searches):
        chosen = rng.sample(practice["providers"], providers)
        started = time.perf_counter()
        slots = slots_search(
            appointment_type=practice[kind],
            providers=chosen,
            start_date=first,
            end_date=last,
        )
        samples.append(time.perf_counter() - started)
        found += len(slots)
    return _percentiles(samples), found // searches


def measure_booking(
    practice: dict[str, Any], rng: random.Random, clients: int, attempts: int
) -> tuple[str, int]:
    """`clients` threads, each making `attempts` bookings at slots drawn from one shared
    pool of free slots (20 providers, next fortnight)."""
    from django.db import connection, connections

    from careloop.patients.models import Patient
    from careloop.scheduling.booking import SlotTaken, appointment_book
    from careloop.scheduling.models import Location, Provider
    from careloop.scheduling.slots import slots_search

    first = practice["today"] + datetime.timedelta(days=1)
    pool = slots_search(
        appointment_type=practice["visit"],
        providers=practice["providers"][:20],
        start_date=first,
        end_date=first + datetime.timedelta(days=13),
    )
    providers = {p.pk: p for p in Provider.objects.all()}
    locations = {loc.pk: loc for loc in Location.objects.all()}
    patients = list(Patient.objects.all()[:clients])
    outcomes = {"won": 0, "taken": 0, "other": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(n: int) -> None:
        local_rng = random.Random(n)
        try:
            barrier.wait()
            for _ in range(attempts):
                slot = local_rng.choice(pool)
                try:
                    appointment_book(
                        actor=practice["desk"],
                        patient=patients[n % len(patients)],
                        appointment_type=practice["visit"],
                        provider=providers[slot.provider_id],
                        location=locations[slot.location_id],
                        start=slot.start,
                    )
                    result = "won"
                except SlotTaken:
                    result = "taken"
                with lock:
                    outcomes[result] += 1
        except Exception as error:  # noqa: BLE001 - counted and shown, the run goes on
            with lock:
                outcomes["other"] += 1
            print(f"  client {n}: {type(error).__name__}: {str(error)[:200]}", flush=True)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    tried = outcomes["won"] + outcomes["taken"]
    line = (
        f"{clients} clients, {tried} attempts at {len(pool)} free slots in {seconds:.1f}s: "
        f"{tried / seconds:,.0f} attempts/s, {outcomes['won']} booked "
        f"({outcomes['won'] / seconds:,.1f}/s), {outcomes['taken']} SlotTaken, "
        f"{outcomes['other']} other errors"
    )
    connection.close()
    return line, outcomes["won"]


# Driven from the run's own bookings (a correlated EXISTS), so no engine's planner can
# start from the million older rows: a plain self-join took SQLite minutes.
DOUBLE_BOOKINGS = """
SELECT count(*) FROM scheduling_appointment a
 WHERE a.created_at > %s AND a.busy_until IS NOT NULL
   AND a.status IN ('booked', 'confirmed', 'checked_in', 'fulfilled')
   AND EXISTS (
       SELECT 1 FROM scheduling_appointment b
        WHERE b.provider_id = a.provider_id AND b.id <> a.id
          AND b.busy_until IS NOT NULL AND b.start < a.busy_until AND a.start < b.busy_until
          AND b.status IN ('booked', 'confirmed', 'checked_in', 'fulfilled'))
"""


def double_bookings(since: datetime.datetime) -> int:
    """The run's bookings that share a provider's time with another careloop booking."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(DOUBLE_BOOKINGS, [since])
        row = cursor.fetchone()
    return int(row[0])


def child(engine: str, clients: int, attempts: int, searches: int) -> None:
    _setup_django()
    from django.core.management import call_command

    from careloop.core.clock import now

    call_command("migrate", verbosity=0)
    print(f"  database: {_db_version()}", flush=True)
    rng = random.Random(8)
    started = time.perf_counter()
    practice = build_practice(rng)
    _analyze()
    print(
        f"  practice: {PROVIDERS} providers, {practice['appointments']:,} appointments "
        f"over 2 years, built in {time.perf_counter() - started:.0f}s",
        flush=True,
    )
    for providers, days, count in ((1, 90, searches), (50, 7, searches), (50, 90, 10)):
        line, per = measure_search(practice, rng, count, providers, days)
        print(f"  slots_search {providers} provider(s) x {days} days: {line}; {per} slots")
    line, per = measure_search(practice, rng, searches, 50, 7, "procedure")
    print(f"  slots_search, a procedure needing a room, 50 providers x 7 days: {line}; {per} slots")
    began = now()
    line, won = measure_booking(practice, rng, clients, attempts)
    print(f"  booking: {line}", flush=True)
    doubles = double_bookings(began)
    print(f"  double bookings after the run: {doubles}", flush=True)
    if doubles:
        raise SystemExit(1)


def run_engine(engine: str, args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="careloop-bench-sched-"))
    env = dict(os.environ)
    env["CARELOOP_VAR_DIR"] = str(tmp / "var")
    env["CARELOOP_ENV"] = "test"
    drop = None
    if engine == "postgresql":
        import psycopg

        with psycopg.connect(PG_MAINTENANCE, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
        base = PG_MAINTENANCE.rsplit("/", 1)[0]
        env["CARELOOP_DATABASE_URL"] = f"{base}/{PG_DB}"

        def drop() -> None:
            with psycopg.connect(PG_MAINTENANCE, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')

    else:
        env["CARELOOP_DATABASE_URL"] = f"sqlite:///{tmp / 'bench.db'}"
    print(f"\n{engine}:", flush=True)
    clients = args.clients if engine == "postgresql" else args.sqlite_clients
    try:
        return subprocess.call(  # noqa: S603
            [
                sys.executable,
                __file__,
                "--child",
                engine,
                "--clients",
                str(clients),
                "--attempts",
                str(args.attempts),
                "--searches",
                str(args.searches),
            ],
            env=env,
        )
    finally:
        if drop is not None:
            drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--engines", default="postgresql,sqlite")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sqlite-clients", type=int, default=8)
    parser.add_argument("--attempts", type=int, default=25)
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.clients, args.attempts, args.searches)
        return 0
    print(f"machine: {machine()}", flush=True)
    status = 0
    for engine in args.engines.split(","):
        status |= run_engine(engine, args)
    return status


if __name__ == "__main__":
    sys.exit(main())
