#!/usr/bin/env python3
"""Benchmark the audit log: `audit_record` events/s (one writer, then several) with the
sealer running beside the writers, and the time `careloop audit verify` takes over a
large chain.

Events are inserted unsealed and chained by `audit_seal`; a sealer process runs it in
a loop every `--seal-every` seconds (the worker's sweep runs it every second), and a
run's clock stops only when the sealer has chained the last event: the rates are
events written *and sealed* per second, sustained.

Each engine runs in a child process of this script on a scratch database (a SQLite
file in a temporary directory; a PostgreSQL database `careloop_bench_audit`, created
and dropped here) migrated before the clock starts. Writes are one event per
transaction, the worst case: in the application an event shares its transaction with
the action it records. The big chain for verify is built directly (chain computed in
Python, rows COPYed or executemany'd), not through `audit_record` one by one.

    python bench/audit.py [--engines sqlite,postgresql] [--events 20000] [--writers 4]
                          [--verify-events 1000000] [--seal-every 1.0]
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_MAINTENANCE = os.environ.get("CARELOOP_BENCH_POSTGRES", "postgres:///postgres")
PG_DB = "careloop_bench_audit"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{mem_kib / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        ram = "unknown RAM"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram}; Python {platform.python_version()} on "
        f"{platform.system()} {platform.release()}; load average at start {load}"
    )


# --- the child: one engine ------------------------------------------------------------


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careloop.settings")
    import django

    django.setup()


def _db_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        version = f"SQLite {cursor.fetchone()[0]}"
        try:
            cursor.execute("PRAGMA cipher_version")
            row = cursor.fetchone()
            if row and row[0]:
                version += f" (SQLCipher {row[0]})"
        except Exception:  # noqa: S110 - plain SQLite has no cipher_version
            pass
        return version


def _write(count: int, per_transaction: int = 1) -> float:
    from django.db import connections, transaction

    from careloop.security.audit import audit_record

    patient = uuid.uuid4()
    started = time.perf_counter()
    for n in range(count):
        if n % per_transaction == 0:
            if n:
                transaction.commit()
            transaction.set_autocommit(False)
        audit_record(
            action="patient.view",
            actor_kind="system",
            actor_id="bench",
            patient_id=patient,
            resource_type="Patient",
            resource_id=str(patient),
            fields=("name", "birth_date"),
        )
    transaction.commit()
    transaction.set_autocommit(True)
    seconds = time.perf_counter() - started
    connections.close_all()
    return seconds


def _writer_process(count: int, per_transaction: int) -> None:
    _setup_django()
    _write(count, per_transaction)


def _sealer_process(stop: Any, every: float, queue: Any) -> None:
    """Seal every `every` seconds until told to stop, then seal what is left."""
    _setup_django()
    from django.db import connections

    from careloop.security.audit import audit_seal

    sealed, batches, biggest, busy = 0, 0, 0, 0.0
    while True:
        stopping = stop.is_set()
        started = time.perf_counter()
        count = audit_seal()
        busy += time.perf_counter() - started
        sealed += count
        batches += 1 if count else 0
        biggest = max(biggest, count)
        if stopping:
            break
        stop.wait(every)
    connections.close_all()
    queue.put((sealed, batches, biggest, busy))


def _sealed_run(total: int, writers: int, per_transaction: int, seal_every: float) -> str:
    """Write `total` events from `writers` processes with a sealer beside them."""
    from django.db import connections

    connections.close_all()  # never share a connection across fork
    ctx = multiprocessing.get_context("fork")
    stop, queue = ctx.Event(), ctx.Queue()
    sealer = ctx.Process(target=_sealer_process, args=(stop, seal_every, queue))
    per = total // writers
    procs = [
        ctx.Process(target=_writer_process, args=(per, per_transaction)) for _ in range(writers)
    ]
    started = time.perf_counter()
    sealer.start()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    written = time.perf_counter() - started
    stop.set()
    sealed, batches, biggest, busy = queue.get()
    sealer.join()
    seconds = time.perf_counter() - started
    if any(proc.exitcode for proc in procs) or sealer.exitcode:
        raise SystemExit("a writer or the sealer failed")
    if sealed != per * writers:
        raise SystemExit(f"sealed {sealed} events, expected {per * writers}")
    return (
        f"{per * writers / seconds:8.0f} events/s written and sealed "
        f"({per * writers} events; writes done in {written:.1f}s, all sealed at "
        f"{seconds:.1f}s; sealer busy {busy:.1f}s in {batches} batches, largest {biggest})"
    )


def _bulk_chain(count: int, batch: int = 20_000) -> float:
    """Append `count` valid events after the current head, fast; seconds taken."""
    from django.db import connection, transaction

    from careloop.security import audit_chain
    from careloop.security.models import AuditChainHead

    key = audit_chain.chain_key()
    head = AuditChainHead.objects.filter(pk=1).values_list("seq", "hash").first()
    seq, prev = (head[0], bytes(head[1])) if head else (0, audit_chain.GENESIS)
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    actors = [str(n) for n in range(1, 40)]
    started = time.perf_counter()
    pg = connection.vendor == "postgresql"
    columns = ("hash", *audit_chain.CHAIN_COLUMNS)
    made = 0
    while made < count:
        rows = []
        for _ in range(min(batch, count - made)):
            seq += 1
            event_id, patient = uuid.uuid4(), uuid.UUID(int=seq % 5000 + 1)
            when = at + datetime.timedelta(milliseconds=seq * 50)
            actor = actors[seq % len(actors)]
            values = [seq, event_id.hex, audit_chain.epoch_micros(when), "user", actor]
            values += [f"staff{actor}", "10.1.2.3", patient.hex, "patient.view", "Patient", ""]
            values += [["name", "birth_date"], "success", b"", prev]
            prev = audit_chain.event_hash(key, values)
            stored_at: Any = when if pg else str(when.replace(tzinfo=None))
            row = [prev, *values]
            row[2], row[3], row[8] = event_id.hex, stored_at, patient.hex
            row[12] = json.dumps(values[11])
            rows.append(row)
        made += len(rows)
        with transaction.atomic(), connection.cursor() as cursor:
            if pg:
                copy_sql = f"COPY security_auditevent ({', '.join(columns)}) FROM STDIN"
                with cursor.cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                placeholders = ", ".join(["%s"] * len(columns))
                cursor.executemany(
                    f"INSERT INTO security_auditevent ({', '.join(columns)}) "  # noqa: S608
                    f"VALUES ({placeholders})",
                    rows,
                )
    AuditChainHead.objects.update_or_create(pk=1, defaults={"seq": seq, "hash": prev})
    return time.perf_counter() - started


def child(engine: str, events: int, writers: int, verify_events: int, seal_every: float) -> None:
    _setup_django()
    from django.core.management import call_command

    from careloop.security.audit import audit_seal
    from careloop.security.audit_chain import audit_verify

    call_command("migrate", verbosity=0)
    print(f"  database: {_db_version()}", flush=True)
    print(f"  sealer: audit_seal() every {seal_every}s in its own process", flush=True)
    line = _sealed_run(events, 1, 1, seal_every)
    print(f"  1 writer, 1 event per transaction:   {line}", flush=True)
    line = _sealed_run(events, 1, 10, seal_every)
    print(f"  1 writer, 10 events per transaction: {line}", flush=True)
    have = 2 * events
    if writers > 1:
        line = _sealed_run(events, writers, 1, seal_every)
        print(f"  {writers} writers, 1 event per transaction:  {line}", flush=True)
        have += (events // writers) * writers
    for _ in range(3):
        _write(events // 10)
    unsealed = 3 * (events // 10)
    started = time.perf_counter()
    sealed = audit_seal()
    seconds = time.perf_counter() - started
    print(f"  audit_seal alone: {sealed} events in {seconds:.2f}s ({sealed / seconds:,.0f}/s)")
    have += unsealed
    if verify_events > have:
        seconds = _bulk_chain(verify_events - have)
        print(f"  built {verify_events - have} more chained events in {seconds:.1f}s")
    started = time.perf_counter()
    report = audit_verify()
    seconds = time.perf_counter() - started
    assert report.broken is None, str(report.broken)  # noqa: S101
    assert report.checked == max(have, verify_events), report.checked  # noqa: S101
    print(
        f"  audit verify: {report.checked} events in {seconds:.1f}s "
        f"({report.checked / seconds:,.0f} events/s)",
        flush=True,
    )


# --- the parent ------------------------------------------------------------------------


def run_engine(engine: str, args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="careloop-bench-audit-"))
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
    writers = args.writers if engine == "postgresql" else 1
    try:
        return subprocess.call(  # noqa: S603
            [
                sys.executable,
                __file__,
                "--child",
                engine,
                "--events",
                str(args.events),
                "--writers",
                str(writers),
                "--verify-events",
                str(args.verify_events),
                "--seal-every",
                str(args.seal_every),
            ],
            env=env,
        )
    finally:
        if drop is not None:
            drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    parser.add_argument("--seal-every", type=float, default=1.0)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.events, args.writers, args.verify_events, args.seal_every)
        return 0
    print(f"machine: {machine()}")
    codes = [run_engine(engine.strip(), args) for engine in args.engines.split(",")]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
