"""What the patient's timeline says about a care gap: opened, closed, excluded.

The gap lifecycle changes thousands of gaps in one statement (careloop.caregaps.gaps),
so its timeline entries are written the same way: one INSERT ... SELECT per kind of
change into the timeline table (careloop.patients.timeline reads them like any
other). Summaries are built from coded values only: the measure's title and id, the
resolution, the exclusion reason.

    Care gap opened: Breast Cancer Screening (CMS125)
    Care gap closed: Breast Cancer Screening (CMS125), met
    Care gap closed: Breast Cancer Screening (CMS125), no longer applicable
    Care gap excluded: Breast Cancer Screening (CMS125), hospice
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from careloop.caregaps.dsl import column
from careloop.caregaps.measure import Measure
from careloop.caregaps.models import CareGap, GapResolution, GapState
from careloop.patients.models import TimelineEvent, TimelineKind

REF_TYPE = "care_gap"


def _what(measure: Measure, q: Any, gap: str) -> tuple[str, list[Any]]:
    """`<title> (<id>[ group N])` as SQL: the group only for multi-group measures."""
    if len(measure.groups) == 1:
        return "CAST(%s AS varchar(200))", [f"{measure.title} ({measure.id})"]
    number = f"CAST({gap}.{q(column(CareGap, 'group'))} AS varchar(4))"
    return f"CAST(%s AS varchar(200)) || {number} || ')'", [f"{measure.title} ({measure.id} group "]


def _uuid_text(vendor: str, expr: str) -> str:
    """A UUID column as its canonical text (8-4-4-4-12), as str(uuid) writes it."""
    if vendor == "postgresql":
        return f"CAST({expr} AS varchar(36))"
    parts = [(1, 8), (9, 4), (13, 4), (17, 4), (21, 12)]
    return " || '-' || ".join(f"substr({expr}, {a}, {n})" for a, n in parts)


def new_uuid_sql(vendor: str) -> str:
    """A random (version 4) UUID per row, in the form the engine's UUID columns hold."""
    if vendor == "postgresql":
        return "gen_random_uuid()"
    return (
        "lower(hex(randomblob(6)) || '4' || substr(hex(randomblob(2)), 2) || "
        "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || "
        "hex(randomblob(6)))"
    )


def gap_timeline_sql(
    connection: BaseDatabaseWrapper,
    *,
    measure: Measure,
    opened: tuple[str, list[Any]],
    ended: tuple[str, list[Any]],
) -> list[tuple[str, list[Any]]]:
    """The two INSERT ... SELECTs that put the gaps a synchronisation opened (the
    `opened` condition on the gap table) and closed or excluded (`ended`) on their
    patients' timelines."""
    q = connection.ops.quote_name
    vendor = connection.vendor
    gap = q(CareGap._meta.db_table)
    table = q(TimelineEvent._meta.db_table)

    def g(name: str) -> str:
        return f"{gap}.{q(column(CareGap, name))}"

    targets = ", ".join(
        q(column(TimelineEvent, n))
        for n in ("id", "patient", "at", "kind", "summary", "ref_type", "ref_id")
    )
    what, what_params = _what(measure, q, gap)
    ref = _uuid_text(vendor, f"{gap}.id")
    head = f"INSERT INTO {table} ({targets}) SELECT {new_uuid_sql(vendor)}, {g('patient')}"  # noqa: S608
    open_sql = (
        f"{head}, {g('opened_at')}, %s, CAST(%s AS varchar(40)) || {what}, %s, {ref} "
        f"FROM {gap} WHERE {opened[0]} AND {g('state')} = %s"
    )
    open_params = [
        TimelineKind.CARE_GAP,
        "Care gap opened: ",
        *what_params,
        REF_TYPE,
        *opened[1],
        GapState.OPEN,
    ]
    how = (
        f"CASE WHEN {g('state')} = %s THEN CAST(%s AS varchar(40)) || {g('reason')} "
        f"WHEN {g('resolution')} = %s THEN CAST(%s AS varchar(40)) "
        "ELSE CAST(%s AS varchar(40)) END"
    )
    how_params = [GapState.EXCLUDED, ", ", GapResolution.MET, ", met", ", no longer applicable"]
    verb = (
        f"CASE WHEN {g('state')} = %s THEN CAST(%s AS varchar(40)) ELSE CAST(%s AS varchar(40)) END"
    )
    verb_params = [GapState.EXCLUDED, "Care gap excluded: ", "Care gap closed: "]
    end_sql = (
        f"{head}, {g('closed_at')}, %s, {verb} || {what} || {how}, %s, {ref} "
        f"FROM {gap} WHERE {ended[0]} AND {g('state')} <> %s"
    )
    end_params = [
        TimelineKind.CARE_GAP,
        *verb_params,
        *what_params,
        *how_params,
        REF_TYPE,
        *ended[1],
        GapState.OPEN,
    ]
    return [(open_sql, open_params), (end_sql, end_params)]
