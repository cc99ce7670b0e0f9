"""Evaluate a measure over the population: one INSERT ... SELECT per group.

The population criteria compile (careloop.caregaps.dsl) to boolean SQL over the
patient row `p`; the evaluator wraps them in one statement per group that selects the
patients of the initial population, applies the proportion rules and writes their
memberships into PatientMeasureResult:

    INSERT INTO results (...)
    SELECT run, t.id, group, denominator rules on t.d, t.x, t.n, t.e, t.nx, t.s
    FROM (SELECT p.id, CASE WHEN <denominator> ..., <strata bits>
          FROM patients p WHERE <initial population> [AND p.id IN (...)]) t

Proportion rules: the denominator only inside the initial population; an exclusion
only inside the denominator; the numerator only in the denominator and not excluded;
an exception only in the denominator, not excluded and not in the numerator; a
numerator exclusion only inside the numerator.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction
from django.db.models import Count, Q

from careloop.caregaps.dsl import PATIENT, P, column, pcol
from careloop.caregaps.measure import POPULATIONS, Group, Measure, measure_get
from careloop.caregaps.models import MeasureRun, PatientMeasureResult
from careloop.caregaps.sql import Cond, Ctx
from careloop.caregaps.terminology import valuesets_ensure
from careloop.core.clock import now
from careloop.patients.models import Patient


@dataclass(frozen=True)
class Period:
    """The measurement period: whole days, the end day included to 23:59:59.999."""

    start: datetime.date
    end: datetime.date

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(datetime.date(year, 1, 1), datetime.date(year, 12, 31))

    def bounds(self) -> tuple[datetime.datetime, datetime.datetime]:
        start = datetime.datetime.combine(self.start, datetime.time(), tzinfo=datetime.UTC)
        end = datetime.datetime.combine(
            self.end, datetime.time(23, 59, 59, 999000), tzinfo=datetime.UTC
        )
        return start, end


def _flag(ctx: Ctx, cond: Cond) -> tuple[str, list[Any]]:
    text, params = cond.sql(ctx)
    return f"CASE WHEN ({text}) THEN 1 ELSE 0 END", params


def group_statement(
    ctx: Ctx, group: Group, *, run_id: int, number: int, patient_ids: Sequence[uuid.UUID] | None
) -> tuple[str, list[Any]]:
    """The INSERT ... SELECT that writes one group's memberships."""
    connection = connections[ctx.using]
    q = connection.ops.quote_name
    columns: list[str] = []
    params: list[Any] = []
    criteria = {
        "d": group.denominator,
        "x": group.denominator_exclusion,
        "e": group.denominator_exception,
        "n": group.numerator,
        "nx": group.numerator_exclusion,
    }
    for name, cond in criteria.items():
        if cond is None:
            columns.append(f"1 AS {name}")
            continue
        text, more = _flag(ctx, cond)
        columns.append(f"{text} AS {name}")
        params.extend(more)
    strata: list[str] = []
    for bit, stratum in enumerate(group.stratifiers):
        text, more = stratum.sql(ctx)
        strata.append(f"CASE WHEN ({text}) THEN {1 << bit} ELSE 0 END")
        params.extend(more)
    columns.append(f"{' + '.join(strata) if strata else '0'} AS s")
    where, more = group.initial_population.sql(ctx)
    params.extend(more)
    merged = pcol("merged_into")
    scope = ""
    if patient_ids is not None:
        pk = Patient._meta.pk
        assert pk is not None  # noqa: S101 - every model has one
        ids = [pk.get_db_prep_value(i, connection) for i in patient_ids]
        scope = f" AND {P}.id IN ({', '.join(['%s'] * len(ids))})" if ids else " AND 1 = 0"
        params.extend(ids)
    inner = (
        # Identifiers from model metadata and compiled criteria; values are parameters.
        f"SELECT {P}.id AS pid, {', '.join(columns)} FROM {PATIENT} {P} "  # noqa: S608
        f"WHERE {P}.{merged} IS NULL AND ({where}){scope}"
    )
    table = q(PatientMeasureResult._meta.db_table)
    targets = ["run", "patient", "group", *POPULATIONS, "strata"]
    target_sql = ", ".join(q(column(PatientMeasureResult, name)) for name in targets)
    rules = [
        "(1 = 1)",
        "(t.d = 1)",
        "(t.d = 1 AND t.x = 1)",
        "(t.d = 1 AND t.x = 0 AND t.n = 0 AND t.e = 1)",
        "(t.d = 1 AND t.x = 0 AND t.n = 1)",
        "(t.d = 1 AND t.x = 0 AND t.n = 1 AND t.nx = 1)",
    ]
    sql = (
        f"INSERT INTO {table} ({target_sql}) "  # noqa: S608 - identifiers only
        f"SELECT %s, t.pid, %s, {', '.join(rules)}, t.s FROM ({inner}) t"
    )
    return sql, [run_id, number, *params]


def measure_evaluate(
    *,
    measure: Measure | str,
    period: Period,
    patient_ids: Sequence[uuid.UUID] | None = None,
    using: str = "default",
) -> MeasureRun:
    """Evaluate `measure` for `period` over everyone (or only `patient_ids`) and store
    the memberships as a new MeasureRun."""
    if isinstance(measure, str):
        measure = measure_get(measure)
    start, end = period.bounds()
    vendor = connections[using].vendor
    compiled: list[tuple[str, list[Any]]] = []
    began = time.perf_counter()
    with transaction.atomic(using=using):
        run = MeasureRun.objects.using(using).create(
            measure=measure.id,
            period_start=period.start,
            period_end=period.end,
            scoped_patients=None if patient_ids is None else len(patient_ids),
            started_at=now(),
        )
        ctx = Ctx(start=start, end=end, vendor=vendor, using=using)
        for number, group in enumerate(measure.groups, start=1):
            compiled.append(
                group_statement(ctx, group, run_id=run.pk, number=number, patient_ids=patient_ids)
            )
        valuesets_ensure(oids=ctx.valuesets)
        with connections[using].cursor() as cursor:
            for sql, params in compiled:
                cursor.execute(sql, params)
        run.finished_at = now()
        run.seconds = time.perf_counter() - began
        run.save(update_fields=["finished_at", "seconds"])
    return run


def run_counts(run: MeasureRun) -> dict[int, dict[str, int]]:
    """Population counts per group number (the summary MeasureReport's numbers)."""
    aggregates = {name: Count("id", filter=Q(**{name: True})) for name in POPULATIONS}
    rows = PatientMeasureResult.objects.filter(run=run).values("group").annotate(**aggregates)
    counts = {row["group"]: {name: row[name] for name in POPULATIONS} for row in rows}
    measure = measure_get(run.measure)
    for number in range(1, len(measure.groups) + 1):
        counts.setdefault(number, dict.fromkeys(POPULATIONS, 0))
    return dict(sorted(counts.items()))
