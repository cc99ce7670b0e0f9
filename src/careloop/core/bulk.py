"""Fast bulk writes that bypass the ORM: row tuples go in with COPY on PostgreSQL and
`executemany` on SQLite, each value adapted the way Django's own fields store it.

Used where ORM objects per row would be too slow (the demo loader, the FHIR ingest).
Class-I values must already be sealed by the caller with the very calls the model
fields make (`crypto.seal`, `fields.blind_value`), so the ORM reads the rows back as
its own.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, connection, connections, models


@dataclass(frozen=True, slots=True)
class Adapters:
    """How Python values go into this backend's columns, as Django's own fields store them."""

    uid: Callable[[uuid.UUID | None], Any]
    dt: Callable[[datetime.datetime | None], Any]
    js: Callable[[Any], Any]
    day: Callable[[datetime.date | None], Any]
    tm: Callable[[datetime.time | None], Any]


def _sqlite_dt(value: datetime.datetime | None) -> str | None:
    # Django keeps SQLite datetimes as naive UTC text.
    if value is None:
        return None
    if value.tzinfo is not datetime.UTC:
        value = value.astimezone(datetime.UTC)
    return value.replace(tzinfo=None).isoformat(" ")


SQLITE = Adapters(
    uid=lambda u: None if u is None else u.hex,
    dt=_sqlite_dt,
    js=lambda v: json.dumps(v),
    day=lambda d: None if d is None else d.isoformat(),
    tm=lambda t: None if t is None else t.isoformat(),
)
POSTGRES = Adapters(
    uid=lambda u: u, dt=lambda d: d, js=lambda v: json.dumps(v), day=lambda d: d, tm=lambda t: t
)


def model_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """A concrete field of `model` by name (for its column)."""
    return cast("models.Field[Any, Any]", model._meta.get_field(name))


class UnsupportedDatabase(Exception):
    """Bulk writes know PostgreSQL and SQLite only (message is safe to show)."""


def adapters() -> Adapters:
    if connection.vendor == "postgresql":
        return POSTGRES
    if connection.vendor == "sqlite":
        return SQLITE
    raise UnsupportedDatabase(
        f"bulk loading supports PostgreSQL and SQLite, not {connection.vendor}"
    )


def quoted(table: str, columns: Sequence[str]) -> tuple[str, str]:
    quote = connection.ops.quote_name
    return quote(table), ", ".join(quote(c) for c in columns)


def insert_rows(table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert `rows` (already adapted) into `table`; inside the caller's transaction."""
    if not rows:
        return
    name, cols = quoted(table, columns)
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        with (
            connection.connection.cursor() as cursor,
            cursor.copy(f"COPY {name} ({cols}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(columns))
    # The raw DB-API connection: Django's cursor wrapper would rewrite every statement.
    # Identifiers come from model metadata through quote_name; values are parameters.
    statement = f"INSERT INTO {name} ({cols}) VALUES ({marks})"  # noqa: S608
    connection.connection.executemany(statement, rows)


@models.Field.register_lookup
class AnyOf(models.Lookup):  # type: ignore[type-arg]
    """`field__anyof=[...]`: membership in a long list as one array parameter
    (`= ANY(%s)`) on PostgreSQL, where `__in` would send thousands of placeholders
    for the driver to parse; plain `IN` elsewhere."""

    lookup_name = "anyof"
    prepare_rhs = False

    def get_db_prep_lookup(self, value: Any, connection: Any) -> tuple[str, list[Any]]:
        return "%s", [list(value)]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        if not values:
            return "1 = 0", list(lhs_params)
        marks = ", ".join(["%s"] * len(values))
        return f"{lhs} IN ({marks})", [*lhs_params, *values]


def insert_objects(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    """Insert unsaved model instances (primary keys set) through `insert_rows`.

    Each value goes through the field's own `pre_save` (so sealed columns are sealed
    and blind indexes computed, bound to the row's key) and `get_db_prep_save`, exactly
    as `save()` would; only the statement differs. Auto-increment keys are left to the
    database."""
    if not objs:
        return
    fields = [
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, models.AutoField | models.BigAutoField))
    ]
    # The real connection, not the thread-local proxy: this runs per field per row.
    db = connections[DEFAULT_DB_ALIAS]
    preps = [(f.pre_save, f.get_db_prep_save) for f in fields]
    rows = [tuple(prep(pre(obj, True), db) for pre, prep in preps) for obj in objs]
    insert_rows(model._meta.db_table, [f.column for f in fields], rows)


class Rows:
    """Rows for one table, named by model field, collected and inserted in one go.

    For the hottest paths, where even a model instance per row costs too much: the
    caller gives each row's values already adapted (`adapters()`), in field order."""

    def __init__(self, model: type[models.Model], fields: Sequence[str]) -> None:
        self.table = model._meta.db_table
        self.columns = [model_field(model, name).column for name in fields]
        self.rows: list[tuple[Any, ...]] = []

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)

    def insert(self) -> None:
        insert_rows(self.table, self.columns, self.rows)
        self.rows = []
