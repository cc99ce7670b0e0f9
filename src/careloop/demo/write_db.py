"""Load the demo practice into the configured database, fast.

Rows are built as tuples (no model instance per row) and inserted per batch of
patients in one transaction: `COPY` on PostgreSQL, `executemany` on SQLite. Class-I
columns are sealed and blind-indexed here with the very calls the model fields make
(`crypto.seal` bound to table, column and primary key; `fields.blind_value`), so the
ORM reads these rows back exactly as if it had written them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from django.db import connection, transaction

from careloop.core import bulk
from careloop.core.bulk import insert_rows
from careloop.demo.records import PatientRec, Practice
from careloop.demo.rows import Batch, Sealer, add_patient
from careloop.demo.tables import TABLES
from careloop.patients.models import Patient
from careloop.scheduling.models import AppointmentType, Location, Provider
from careloop.security import crypto

BATCH_PATIENTS = 2000
SQLITE_CACHE_KIB = 256 * 1024
SQLITE_ANALYSIS_ROWS = 20_000


class DemoRefused(Exception):
    """The database is not one the demo may fill (message is safe to show)."""


def ensure_empty() -> None:
    if Patient.objects.exists():
        raise DemoRefused(
            "the database already has patients; careloop demo only fills an empty practice "
            "(use a fresh database, or another CARELOOP_VAR_DIR / CARELOOP_DATABASE_URL)"
        )


def save_practice(practice: Practice) -> dict[uuid.UUID, uuid.UUID]:
    """Create locations, providers and visit types once; return generated id -> stored id
    (an earlier, interrupted run may have stored them under other ids)."""
    ids: dict[uuid.UUID, uuid.UUID] = {}
    with transaction.atomic():
        for loc in practice.locations:
            location, _ = Location.objects.get_or_create(
                name=loc.name,
                defaults={
                    "id": loc.id,
                    "time_zone": loc.time_zone,
                    "phone": loc.phone,
                    "address": f"{loc.line}, {loc.city}, {loc.state} {loc.postal_code}",
                },
            )
            ids[loc.id] = location.id
        for prov in practice.providers:
            provider, _ = Provider.objects.get_or_create(
                npi=prov.npi,
                defaults={
                    "id": prov.id,
                    "display_name": prov.display_name,
                    "specialty": prov.specialty,
                    "location_id": ids[prov.location_id],
                },
            )
            ids[prov.id] = provider.id
        for kind in practice.appointment_types:
            AppointmentType.objects.get_or_create(
                code=kind.code,
                defaults={
                    "name": kind.name,
                    "minutes": kind.minutes,
                    "telehealth": kind.telehealth,
                    "new_patient": kind.new_patient,
                    "self_bookable": kind.self_bookable,
                    "visit_code": kind.visit_code,
                },
            )
    return ids


def flush(batch: Batch, counts: dict[str, int]) -> None:
    with transaction.atomic():
        for spec in TABLES:
            rows = batch.rows.get(spec.table)
            if rows:
                insert_rows(spec.table, spec.columns(), rows)
                counts[spec.table] = counts.get(spec.table, 0) + len(rows)
    batch.rows.clear()
    batch.patients = 0


def write_db(
    *,
    practice: Practice,
    patients: Iterable[PatientRec],
    on_patient: Callable[[], None] = lambda: None,
    batch_patients: int = BATCH_PATIENTS,
) -> dict[str, int]:
    """Load the practice and stream the patients in; return rows inserted per table."""
    try:
        a = bulk.adapters()
    except bulk.UnsupportedDatabase as error:
        raise DemoRefused(
            f"careloop demo loads PostgreSQL or SQLite, not {connection.vendor}"
        ) from error
    ensure_empty()
    ids = save_practice(practice)
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        # A big page cache keeps the growing indexes in memory: SQLCipher decrypts and
        # re-encrypts every page that leaves it, which otherwise dominates the load.
        # PRAGMA takes no parameters; the value is our own integer constant.
        pragma = f"PRAGMA cache_size = -{SQLITE_CACHE_KIB:d}"
        connection.connection.execute(pragma)
    seal = Sealer(crypto.keyring.active_version())
    counts: dict[str, int] = {}
    batch = Batch()
    for rec in patients:
        add_patient(batch, rec, a=a, seal=seal, ids=ids)
        on_patient()
        if batch.patients >= batch_patients:
            flush(batch, counts)
    if batch.patients:
        flush(batch, counts)
    analyze()
    return counts


def analyze() -> None:
    """Refresh the planner's statistics of the loaded tables. SQLite keeps none until
    told (without them the care-gap measures' correlated lookups pick full scans: CMS2
    over 800 demo patients took minutes instead of 2 s); PostgreSQL's autovacuum would
    get there, later than the first evaluation. Sampled on SQLite, so it stays quick at
    a million patients."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # Our own integer constant; PRAGMA takes no parameters.
            limit = f"PRAGMA analysis_limit = {SQLITE_ANALYSIS_ROWS:d}"
            cursor.execute(limit)  # nosemgrep: careloop-no-string-built-sql
            cursor.execute("ANALYZE")
        else:
            for spec in TABLES:
                # A table name of ours, quoted.
                analyze = f"ANALYZE {connection.ops.quote_name(spec.table)}"
                cursor.execute(analyze)  # nosemgrep: careloop-no-string-built-sql
