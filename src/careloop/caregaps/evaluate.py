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
from careloop.security.audit import audit_record


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


def _met_until(
    ctx: Ctx, measure: Measure, scope: tuple[str, list[Any]], as_of: datetime.date
) -> tuple[str, list[Any]]:
    """`(SELECT pid, MAX(until) ...)`: per patient, the last day a closing fact (on or
    before the as-of date) keeps the measure met: its day plus the closing's months.
    Empty when the measure declares no closing."""
    selects: list[str] = []
    params: list[Any] = []
    for closing in measure.closing:
        row, (frm, more) = closing.facts.select(ctx)
        day = ctx.day(closing.point(row).expr)
        scope_sql = scope[0].replace(f"{P}.id", row.c("patient")) + ctx.only_within(
            row.c("patient")
        )
        selects.append(
            f"SELECT {row.c('patient')} AS pid, {ctx.add_months(day)} AS until {frm}"
            f" AND {day} <= %s{scope_sql}"
        )
        params.extend([ctx.int_param(closing.months), *more, ctx.date(as_of), *scope[1]])
    if not selects:
        return "", []
    union = " UNION ALL ".join(selects)
    sql = f"(SELECT c.pid, MAX(c.until) AS until FROM ({union}) c GROUP BY c.pid)"  # noqa: S608
    return sql, params


def _scope(ctx: Ctx, patient_ids: Sequence[uuid.UUID] | None) -> tuple[str, list[Any]]:
    if patient_ids is None:
        return "", []
    connection = connections[ctx.using]
    pk = Patient._meta.pk
    assert pk is not None  # noqa: S101 - every model has one
    ids = [pk.get_db_prep_value(i, connection) for i in patient_ids]
    if not ids:
        return " AND 1 = 0", []
    return f" AND {P}.id IN ({', '.join(['%s'] * len(ids))})", ids


def _status_sql(measure: Measure) -> str:
    """The rolling status from the memberships (t.*) and the met-until day (t.u);
    parameters: as of, as of + horizon."""
    met = "t.n = 0" if measure.improvement == "decrease" else "t.n = 1"
    return (
        "CASE WHEN t.d = 0 THEN 'not_applicable' "
        "WHEN t.x = 1 OR (t.n = 0 AND t.e = 1) THEN 'excluded' "
        f"WHEN NOT ({met}) THEN 'overdue' "
        "WHEN t.u IS NOT NULL AND t.u < %s THEN 'due_soon' "
        "ELSE 'met' END"
    )


def group_statement(
    ctx: Ctx,
    group: Group,
    *,
    measure: Measure,
    run_id: int,
    number: int,
    patient_ids: Sequence[uuid.UUID] | None,
    as_of: datetime.date,
    horizon_days: int,
) -> tuple[str, list[Any]]:
    """The INSERT ... SELECT that writes one group's memberships and statuses."""
    merged = pcol("merged_into")
    scope = _scope(ctx, patient_ids)
    where, where_params = group.initial_population.sql(ctx)
    if ctx.materialize:
        # The initial population first, as a set; the other criteria look only at
        # its patients' facts.
        population = ctx.set_name(
            f"SELECT {P}.id AS pid FROM {PATIENT} {P} "  # noqa: S608
            f"WHERE {P}.{merged} IS NULL AND ({where}){scope[0]}",
            [*where_params, *scope[1]],
        )
        ctx.within = population
        where, where_params = f"{P}.id IN (SELECT pid FROM {population})", []  # noqa: S608
    try:
        return _group_statement(
            ctx, group, measure=measure, run_id=run_id, number=number, scope=scope,
            where=(where, where_params), as_of=as_of, horizon_days=horizon_days,
        )  # fmt: skip
    finally:
        ctx.within = None


def _group_statement(
    ctx: Ctx,
    group: Group,
    *,
    measure: Measure,
    run_id: int,
    number: int,
    scope: tuple[str, list[Any]],
    where: tuple[str, list[Any]],
    as_of: datetime.date,
    horizon_days: int,
) -> tuple[str, list[Any]]:
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
    reasons: list[str] = []
    for _code, cond in group.exclusion_reasons:
        text, more = cond.sql(ctx)
        reasons.append(f"WHEN ({text}) THEN %s")
        params.extend([*more, _code])
    columns.append(f"CASE {' '.join(reasons)} ELSE 'other' END AS r" if reasons else "'other' AS r")
    until_sql, until_params = _met_until(ctx, measure, scope, as_of)
    if until_sql:
        columns.append("mu.until AS u")
        join = f" LEFT JOIN {until_sql} mu ON mu.pid = {P}.id"
    else:
        columns.append("CAST(NULL AS DATE) AS u")
        join = ""
    merged = pcol("merged_into")
    inner = (
        # Identifiers from model metadata and compiled criteria; values are parameters.
        f"SELECT {P}.id AS pid, {', '.join(columns)} FROM {PATIENT} {P}{join} "  # noqa: S608
        f"WHERE {P}.{merged} IS NULL AND ({where[0]}){scope[0]}"
    )
    params = [*params, *until_params, *where[1], *scope[1]]
    table = q(PatientMeasureResult._meta.db_table)
    targets = ["run", "patient", "group", *POPULATIONS, "strata", "status", "due_date", "reason"]
    target_sql = ", ".join(q(column(PatientMeasureResult, name)) for name in targets)
    rules = [
        "(1 = 1)",
        "(t.d = 1)",
        "(t.d = 1 AND t.x = 1)",
        "(t.d = 1 AND t.x = 0 AND t.n = 0 AND t.e = 1)",
        "(t.d = 1 AND t.x = 0 AND t.n = 1)",
        "(t.d = 1 AND t.x = 0 AND t.n = 1 AND t.nx = 1)",
    ]
    met = "t.n = 0" if measure.improvement == "decrease" else "t.n = 1"
    # The due date: met or due soon, the met-until day (the period's end without a
    # closing fact); overdue, the day it lapsed (empty when it never was met).
    due = (
        "CASE WHEN t.d = 0 OR t.x = 1 OR (t.n = 0 AND t.e = 1) THEN NULL "
        f"WHEN t.u IS NOT NULL THEN t.u WHEN {met} THEN %s END"
    )
    reason = "CASE WHEN t.d = 1 AND (t.x = 1 OR (t.n = 0 AND t.e = 1)) THEN t.r ELSE '' END"
    sql = (
        f"INSERT INTO {table} ({target_sql}) "  # noqa: S608 - identifiers only
        f"SELECT %s, t.pid, %s, {', '.join(rules)}, t.s, {_status_sql(measure)}, "
        f"{due}, {reason} FROM ({inner}) t"
    )
    horizon = ctx.date(as_of + datetime.timedelta(days=horizon_days))
    return sql, [run_id, number, horizon, ctx.date(ctx.end.date()), *params]


def _compile(
    measure: Measure,
    *,
    period: Period,
    run_id: int,
    patient_ids: Sequence[uuid.UUID] | None,
    as_of: datetime.date,
    horizon_days: int,
    using: str,
) -> tuple[list[tuple[str, list[Any]]], set[str]]:
    start, end = period.bounds()
    correlated = patient_ids is not None and len(patient_ids) <= CORRELATED_MAX
    ctx = Ctx(
        start=start,
        end=end,
        vendor=connections[using].vendor,
        using=using,
        correlated=correlated,
        materialize=not correlated,
    )
    statements = [
        group_statement(
            ctx,
            group,
            measure=measure,
            run_id=run_id,
            number=number,
            patient_ids=patient_ids,
            as_of=as_of,
            horizon_days=horizon_days,
        )
        for number, group in enumerate(measure.groups, start=1)
    ]
    return _with_sets(ctx, statements), ctx.valuesets


def _with_sets(ctx: Ctx, statements: list[tuple[str, list[Any]]]) -> list[tuple[str, list[Any]]]:
    """The statements that fill the compilation's patient sets (in the order they were
    made: a set only names sets made before it), the measure's statements, then the
    drops."""
    make: list[tuple[str, list[Any]]] = []
    drop: list[tuple[str, list[Any]]] = []
    for (select_sql, params), name in ctx.sets.items():
        make.append((f"DROP TABLE IF EXISTS {name}", []))
        create = f"CREATE TEMPORARY TABLE {name} AS SELECT DISTINCT pid FROM ({select_sql}) s"  # noqa: S608
        make.append((create, list(params)))
        if ctx.vendor == "postgresql":
            # Temporary tables have no statistics until analysed; the planner needs them.
            make.append((f"ANALYZE {name}", []))
        drop.append((f"DROP TABLE {name}", []))
    return [*make, *statements, *drop]


# Up to this many patients, criteria run per patient through the (patient, kind)
# index; above, as semi-joins over the population.
CORRELATED_MAX = 2000
DEFAULT_HORIZON_DAYS = 60


def measure_evaluate(
    *,
    measure: Measure | str,
    period: Period,
    patient_ids: Sequence[uuid.UUID] | None = None,
    as_of: datetime.date | None = None,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    actor: Any = None,
    using: str = "default",
) -> MeasureRun:
    """Evaluate `measure` for `period` over everyone (or only `patient_ids`) and store
    the memberships and rolling statuses (as of `as_of`, default the period's end) as
    a new MeasureRun. One audit event records the run (`actor`: the user or console
    operator who asked; none: the system)."""
    if isinstance(measure, str):
        measure = measure_get(measure)
    as_of = as_of or period.end
    began = time.perf_counter()
    with transaction.atomic(using=using):
        run = MeasureRun.objects.using(using).create(
            measure=measure.id,
            period_start=period.start,
            period_end=period.end,
            as_of=as_of,
            horizon_days=horizon_days,
            whole_population=patient_ids is None,
            scoped_patients=None if patient_ids is None else len(patient_ids),
            started_at=now(),
        )
        _execute(measure, run, patient_ids=patient_ids, using=using)
        run.finished_at = now()
        run.seconds = time.perf_counter() - began
        run.save(update_fields=["finished_at", "seconds"])
        _audit(actor, resource_id=str(run.pk))
    return run


def _audit(actor: Any, *, resource_id: str) -> None:
    """Measure evaluation reads the clinical facts of a population: one event a run."""
    audit_record(
        action="caregaps.evaluate",
        actor=actor,
        actor_kind=None if actor is not None else "system",
        actor_id="" if actor is not None else "caregaps",
        resource_type="MeasureRun",
        resource_id=resource_id,
    )


def _execute(
    measure: Measure, run: MeasureRun, *, patient_ids: Sequence[uuid.UUID] | None, using: str
) -> None:
    assert run.as_of is not None  # noqa: S101 - every run since 0002 has one
    statements, oids = _compile(
        measure,
        period=Period(run.period_start, run.period_end),
        run_id=run.pk,
        patient_ids=patient_ids,
        as_of=run.as_of,
        horizon_days=run.horizon_days,
        using=using,
    )
    valuesets_ensure(oids=oids)
    with connections[using].cursor() as cursor:
        if connections[using].vendor == "postgresql":
            # For this transaction only: bitmaps over a kind's facts stay exact with
            # more memory, and JIT compiling costs more than these statements save.
            cursor.execute("SET LOCAL work_mem = '64MB'")
            cursor.execute("SET LOCAL jit = off")
        for sql, params in statements:
            cursor.execute(sql, params)


def current_runs(*, using: str = "default") -> list[MeasureRun]:
    """Per measure, the latest whole-population run: the statuses outreach reads."""
    latest: dict[str, MeasureRun] = {}
    runs = MeasureRun.objects.using(using).filter(whole_population=True, finished_at__isnull=False)
    for run in runs.order_by("measure", "-started_at", "-pk"):
        latest.setdefault(run.measure, run)
    return list(latest.values())


def caregaps_refresh(*, patient_ids: Sequence[uuid.UUID], using: str = "default") -> int:
    """Re-evaluate these patients in every measure's current run (same period, as-of
    date and horizon), replacing their rows: what an import calls after touching
    them. Returns the number of runs refreshed. Runs in the caller's transaction when
    there is one."""
    ids = list(dict.fromkeys(patient_ids))
    if not ids:
        return 0
    runs = current_runs(using=using)
    with transaction.atomic(using=using):
        for start in range(0, len(ids), REFRESH_CHUNK):
            chunk = ids[start : start + REFRESH_CHUNK]
            for run in runs:
                PatientMeasureResult.objects.using(using).filter(
                    run=run, patient_id__in=chunk
                ).delete()
                _execute(measure_get(run.measure), run, patient_ids=chunk, using=using)
        if runs:
            _audit(None, resource_id=",".join(str(run.pk) for run in runs)[:64])
    return len(runs)


REFRESH_CHUNK = 1000


def run_counts(run: MeasureRun) -> dict[int, dict[str, int]]:
    """Population counts per group number (the summary MeasureReport's numbers)."""
    aggregates = {name: Count("id", filter=Q(**{name: True})) for name in POPULATIONS}
    rows = PatientMeasureResult.objects.filter(run=run).values("group").annotate(**aggregates)
    counts = {row["group"]: {name: row[name] for name in POPULATIONS} for row in rows}
    measure = measure_get(run.measure)
    for number in range(1, len(measure.groups) + 1):
        counts.setdefault(number, dict.fromkeys(POPULATIONS, 0))
    return dict(sorted(counts.items()))
