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
import enum
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction
from django.db.models import Count, Q

from careloop.caregaps.dsl import PATIENT, P, column, pcol
from careloop.caregaps.gaps import care_gaps_after_refresh, care_gaps_after_run
from careloop.caregaps.measure import POPULATIONS, Closing, Group, Measure, measure_get
from careloop.caregaps.models import MeasureRun, PatientMeasureResult
from careloop.caregaps.sql import Cond, Ctx, hashable_param
from careloop.caregaps.terminology import valuesets_ensure
from careloop.clinical.models import ClinicalFact
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
    params: list[Any] = []
    # A derived table in FROM: the patient row `p` is not in scope.
    in_scope, ctx.patient_in_scope = ctx.patient_in_scope, False
    try:
        selects = [
            _met_until_select(ctx, closing, scope=scope, as_of=as_of, params=params)
            for closing in measure.closing
        ]
    finally:
        ctx.patient_in_scope = in_scope
    if not selects:
        return "", []
    union = " UNION ALL ".join(selects)
    sql = f"(SELECT c.pid, MAX(c.until) AS until FROM ({union}) c GROUP BY c.pid)"  # noqa: S608
    return sql, params


def _met_until_select(
    ctx: Ctx,
    closing: Closing,
    *,
    scope: tuple[str, list[Any]],
    as_of: datetime.date,
    params: list[Any],
) -> str:
    """One closing's `SELECT pid, until`; its parameters are appended to `params`."""
    row, (frm, more) = closing.facts.select(ctx)
    day = ctx.day(closing.point(row).expr)
    scope_sql = scope[0].replace(f"{P}.id", row.c("patient")) + ctx.only_within(row.c("patient"))
    params.extend([ctx.int_param(closing.months), *more, ctx.date(as_of), *scope[1]])
    return (
        f"SELECT {row.c('patient')} AS pid, {ctx.add_months(day)} AS until {frm}"
        f" AND {day} <= %s{scope_sql}"
    )


@dataclass(frozen=True)
class _Slot:
    """Where a value known only at execution goes in compiled parameters: the run's
    id (`index` -1) or the i-th patient's id. Compiled statements are cached."""

    index: int


_RUN = _Slot(-1)


def _scope(ctx: Ctx, patient_ids: Sequence[uuid.UUID] | None) -> tuple[str, list[Any]]:
    if patient_ids is None:
        return "", []
    if not patient_ids:
        return " AND 1 = 0", []
    slots = [_Slot(i) for i in range(len(patient_ids))]
    return f" AND {P}.id IN ({', '.join(['%s'] * len(slots))})", slots


def _status_sql(measure: Measure) -> str:
    """The rolling status from the memberships (t.*) and the met-until day (t.u);
    parameters: as of, as of + horizon."""
    met = "t.n = 0" if measure.improvement == "decrease" else "t.n = 1"
    return (
        "CASE WHEN t.d = 0 THEN 'not_applicable' "
        "WHEN t.x = 1 OR (t.n = 0 AND t.e = 1) THEN 'excluded' "
        f"WHEN NOT ({met}) THEN 'overdue' "
        # Met in the period's terms, but what met it has lapsed by the as-of day.
        "WHEN t.u IS NOT NULL AND t.u < %s THEN 'overdue' "
        "WHEN t.u IS NOT NULL AND t.u < %s THEN 'due_soon' "
        "ELSE 'met' END"
    )


def group_statement(
    ctx: Ctx,
    group: Group,
    *,
    measure: Measure,
    run_id: Any,
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
        ctx.join_sets = True
        # The population drives the statement; the sets join onto its patients only.
        source = f"{population} ip JOIN {PATIENT} {P} ON {P}.id = ip.pid"
        where, where_params = "1 = 1", []
    else:
        source = f"{PATIENT} {P}"
    try:
        return _group_statement(
            ctx, group, measure=measure, run_id=run_id, number=number, scope=scope,
            source=source, where=(where, where_params), as_of=as_of, horizon_days=horizon_days,
        )  # fmt: skip
    finally:
        ctx.within = None
        ctx.join_sets = False
        ctx.joins = []


def _group_statement(
    ctx: Ctx,
    group: Group,
    *,
    measure: Measure,
    run_id: Any,
    number: int,
    scope: tuple[str, list[Any]],
    source: str,
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
    join += "".join(f" LEFT JOIN {name} ON {name}.pid = {P}.id" for name in ctx.joins)
    merged = pcol("merged_into")
    # For a few patients, one row each however the engine plans the correlated EXISTS
    # of the initial population: SQLite 3.51 turns one into a join and returned the
    # patient once per matching fact (over the population the sets are distinct).
    distinct = "DISTINCT " if ctx.correlated else ""
    inner = (
        # Identifiers from model metadata and compiled criteria; values are parameters.
        f"SELECT {distinct}{P}.id AS pid, {', '.join(columns)} FROM {source}{join} "  # noqa: S608
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
        f"{due}, {reason} FROM ({inner}{_FENCE[ctx.vendor]}) t"
    )
    horizon = ctx.date(as_of + datetime.timedelta(days=horizon_days))
    return sql, [run_id, number, ctx.date(as_of), horizon, ctx.date(ctx.end.date()), *params]


# Keeps the inner select from being merged into the INSERT: merged, each criterion
# would be copied into every rule that reads it, and planned and run that many times.
_FENCE = {"postgresql": " OFFSET 0", "sqlite": " LIMIT -1"}


def _compile(
    measure: Measure,
    *,
    period: Period,
    patient_count: int | None,
    as_of: datetime.date,
    horizon_days: int,
    using: str,
) -> tuple[list[tuple[str, list[Any]]], set[str]]:
    """The measure's statements, with `_Slot`s for the run and the patients (None:
    everyone; else how many). Cached: the text and parameters depend only on the
    arguments (value sets are cached per process, careloop.caregaps.terminology)."""
    key = (measure.id, period, patient_count, as_of, horizon_days, using)
    cached = _compiled.get(key)
    if cached is not None:
        return cached
    start, end = period.bounds()
    correlated = patient_count is not None and patient_count <= CORRELATED_MAX
    ctx = Ctx(
        start=start,
        end=end,
        vendor=connections[using].vendor,
        using=using,
        correlated=correlated,
        materialize=not correlated,
    )
    slots = None if patient_count is None else [uuid.UUID(int=0)] * patient_count
    statements = [
        group_statement(
            ctx,
            group,
            measure=measure,
            run_id=_RUN,
            number=number,
            patient_ids=slots,
            as_of=as_of,
            horizon_days=horizon_days,
        )
        for number, group in enumerate(measure.groups, start=1)
    ]
    compiled = _for_driver(_with_sets(ctx, statements), ctx.vendor), ctx.valuesets
    if len(_compiled) >= COMPILED_MAX:
        _compiled.pop(next(iter(_compiled)))
    _compiled[key] = compiled
    return compiled


_compiled: dict[tuple[Any, ...], tuple[list[tuple[str, list[Any]]], set[str]]] = {}
COMPILED_MAX = 64


def _for_driver(
    statements: list[tuple[str, list[Any]]], vendor: str
) -> list[tuple[str, list[Any]]]:
    """The compiled statements as the driver takes them: enumeration members as their
    values; on PostgreSQL, the server's numbered placeholders, each distinct value sent
    once (a statement for a few patients repeats the same few dozen constants, the kind,
    the element, the statuses, the period's bounds, some 800 times: binding and sending
    them cost more than running it)."""
    ready: list[tuple[str, list[Any]]] = []
    for sql, params in statements:
        values = [p.value if isinstance(p, enum.Enum) else p for p in params]
        ready.append(_numbered(sql, values) if vendor == "postgresql" else (sql, values))
    return ready


def _numbered(sql: str, params: list[Any]) -> tuple[str, list[Any]]:
    """`%s` placeholders as `$1, $2, ...`, one number per distinct value (the compiled
    text has no other `%`)."""
    pieces = sql.split("%s")
    if len(pieces) != len(params) + 1:
        raise ValueError(f"{len(pieces) - 1} placeholders for {len(params)} parameters")
    numbers: dict[Any, int] = {}
    unique: list[Any] = []
    text = [pieces[0]]
    for param, piece in zip(params, pieces[1:], strict=True):
        # The type too: True and 1 are equal in Python, not to the server.
        key = param if isinstance(param, _Slot) else (type(param), hashable_param(param))
        number = numbers.get(key)
        if number is None:
            unique.append(param)
            number = numbers[key] = len(unique)
        text.extend((f"${number}", piece))
    return "".join(text), unique


def _bind(
    statements: list[tuple[str, list[Any]]],
    *,
    run_id: int,
    patient_ids: Sequence[uuid.UUID] | None,
    using: str,
) -> list[tuple[str, list[Any]]]:
    """The statements with the run's id and the patients' ids in their slots."""
    connection = connections[using]
    pk = Patient._meta.pk
    assert pk is not None  # noqa: S101 - every model has one
    ids = [pk.get_db_prep_value(i, connection) for i in patient_ids or ()]

    def value(param: Any) -> Any:
        if isinstance(param, _Slot):
            return run_id if param.index < 0 else ids[param.index]
        return param

    return [(sql, [value(p) for p in params]) for sql, params in statements]


def _with_sets(ctx: Ctx, statements: list[tuple[str, list[Any]]]) -> list[tuple[str, list[Any]]]:
    """The statements that fill the compilation's patient sets (in the order they were
    made: a set only names sets made before it), the measure's statements, then the
    drops."""
    make: list[tuple[str, list[Any]]] = []
    drop: list[tuple[str, list[Any]]] = []
    patient = column(ClinicalFact, "patient")
    for name, (select_sql, params) in ctx.set_selects.items():
        make.append((f"DROP TABLE IF EXISTS {name}", []))
        if name in ctx.fact_tables:
            make.append((f"CREATE TEMPORARY TABLE {name} AS {select_sql}", list(params)))
            make.append((f"CREATE INDEX {name}_patient ON {name} ({patient})", []))
        else:
            create = f"CREATE TEMPORARY TABLE {name} AS SELECT DISTINCT pid FROM ({select_sql}) s"  # noqa: S608
            make.append((create, list(params)))
            if ctx.vendor != "postgresql":
                make.append((f"CREATE UNIQUE INDEX {name}_pid ON {name} (pid)", []))
        if ctx.vendor == "postgresql":
            # Temporary tables have no statistics until analysed; the planner needs them
            # (a fact table's row count and its patients: the other columns are only
            # filtered on, row by row).
            what = f"{name} ({patient})" if name in ctx.fact_tables else name
            make.append((f"ANALYZE {what}", []))
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
        statements = _statements(measure, run, patient_ids=patient_ids, using=using)
        population = patient_ids is None or len(patient_ids) > CORRELATED_MAX
        _execute(statements, population=population, using=using)
        if patient_ids is None:
            _analyze_results(using=using)
        run.finished_at = now()
        run.seconds = time.perf_counter() - began
        run.save(update_fields=["finished_at", "seconds"])
        _audit(actor, resource_id=str(run.pk))
        care_gaps_after_run(run=run, using=using)
    return run


def _analyze_results(*, using: str) -> None:
    """Fresh statistics on the results after a run over the population wrote its rows.
    The gap lifecycle and every refresh that follows look up a few patients' rows of
    this run; a planner that has not seen the run yet takes it for one row and reads
    all of it through the status index (490 ms per lookup at 1,000,000 patients on
    PostgreSQL instead of an index probe; SQLite, too, chose the status index).
    Autovacuum would come later, or not at all. What the plans need is how many rows
    the run has, so a small sample serves: 23 ms, not 460 ms, at 100,000 patients."""
    connection = connections[using]
    table = connection.ops.quote_name(PatientMeasureResult._meta.db_table)
    run = connection.ops.quote_name(column(PatientMeasureResult, "run"))
    # Identifiers from model metadata, quoted; PRAGMA values are integers.
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # SQLite reads every index entry unless told to sample (0.24 s at 100,000
            # patients with 1,000 rows an index); its other statements keep their limit.
            cursor.execute("PRAGMA analysis_limit")
            before = int(cursor.fetchone()[0])
            limit = f"PRAGMA analysis_limit = {SQLITE_RESULTS_SAMPLE:d}"
            cursor.execute(limit)  # nosemgrep: careloop-no-string-built-sql
            try:
                analyze = f"ANALYZE {table}"
                cursor.execute(analyze)  # nosemgrep: careloop-no-string-built-sql
            finally:
                restore = f"PRAGMA analysis_limit = {before:d}"
                cursor.execute(restore)  # nosemgrep: careloop-no-string-built-sql
            return
        cursor.execute("SELECT current_setting('default_statistics_target')")
        target = cursor.fetchone()[0]
        apply = "SELECT set_config('default_statistics_target', %s, true)"
        cursor.execute(apply, [str(POSTGRESQL_RESULTS_TARGET)])
        try:
            analyze = f"ANALYZE {table} ({run})"
            cursor.execute(analyze)  # nosemgrep: careloop-no-string-built-sql
        finally:
            cursor.execute(apply, [target])


# The statistics sample after a run: PostgreSQL's statistics target for the run column
# (300 rows a unit: 3,000), SQLite's rows per index.
POSTGRESQL_RESULTS_TARGET = 10
SQLITE_RESULTS_SAMPLE = 1000


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


def _run_compiled(
    measure: Measure, run: MeasureRun, *, patient_count: int | None, using: str
) -> tuple[list[tuple[str, list[Any]]], set[str]]:
    assert run.as_of is not None  # noqa: S101 - every run since 0002 has one
    return _compile(
        measure,
        period=Period(run.period_start, run.period_end),
        patient_count=patient_count,
        as_of=run.as_of,
        horizon_days=run.horizon_days,
        using=using,
    )


def _statements(
    measure: Measure,
    run: MeasureRun,
    *,
    patient_ids: Sequence[uuid.UUID] | None,
    using: str,
    ensure: bool = True,
) -> list[tuple[str, list[Any]]]:
    """The run's statements, bound, for everyone or for these patients."""
    count = None if patient_ids is None else len(patient_ids)
    compiled, oids = _run_compiled(measure, run, patient_count=count, using=using)
    if ensure:
        valuesets_ensure(oids=oids)
    return _bind(compiled, run_id=run.pk, patient_ids=patient_ids, using=using)


def _execute(statements: list[tuple[str, list[Any]]], *, population: bool, using: str) -> None:
    """Run bound statements: over the population (`population`) or for a few patients."""
    if connections[using].vendor == "postgresql":
        _execute_postgresql(statements, population=population, using=using)
        return
    with connections[using].cursor() as cursor, _sqlite_page_cache(cursor, population):
        for sql, params in statements:
            cursor.execute(sql, params)


# SQLite's page cache for a population run (KiB). SQLCipher decrypts every page that
# enters the cache, and a run reads a value set's facts once per criterion: with the
# default 2 MB most of them were decrypted again for every criterion.
SQLITE_POPULATION_CACHE_KIB = 256 * 1024


@contextmanager
def _sqlite_page_cache(cursor: Any, population: bool) -> Iterator[None]:
    """A large page cache for this run on this connection, then the one it had."""
    if not population:
        yield
        return
    cursor.execute("PRAGMA cache_size")
    before = int(cursor.fetchone()[0])
    # PRAGMA takes no parameters; the values are integers.
    larger = f"PRAGMA cache_size = {-SQLITE_POPULATION_CACHE_KIB:d}"
    cursor.execute(larger)  # nosemgrep: careloop-no-string-built-sql
    try:
        yield
    finally:
        restore = f"PRAGMA cache_size = {before:d}"
        cursor.execute(restore)  # nosemgrep: careloop-no-string-built-sql


def _execute_postgresql(
    statements: list[tuple[str, list[Any]]], *, population: bool, using: str
) -> None:
    """Run the statements with settings for this work only.

    Bitmaps over a kind's facts stay exact with more memory, and JIT compiling costs
    more than these statements save. Over the population, the criteria's stacked
    filters are estimated at a row or two, and a nested loop built on that estimate
    rescans a set of thousands per fact: hash joins are the right plan at this scale.
    For a few patients, planning a statement costs more than running it: they are
    prepared once per connection, with a generic plan, on a server-side binding
    cursor (Django's binds on the client, which the server cannot reuse).
    """
    connection = connections[using]
    connection.ensure_connection()
    settings = {
        "work_mem": "64MB",
        "jit": "off",
        "enable_nestloop": "off" if population else "on",
        "plan_cache_mode": "auto" if population else "force_generic_plan",
    }
    raw = connection.connection
    # Django turns preparing off (threshold None); explicit prepare=True needs it on.
    # Django's own cursors bind on the client and never prepare either way.
    threshold, raw.prepare_threshold = raw.prepare_threshold, PREPARE_NEVER_AUTOMATICALLY
    try:
        _execute_prepared(raw, statements, settings=settings, prepare=not population)
    finally:
        raw.prepare_threshold = threshold


# Large enough that psycopg prepares only what is asked for explicitly.
PREPARE_NEVER_AUTOMATICALLY = 2**31 - 1


def _execute_prepared(
    raw: Any, statements: list[tuple[str, list[Any]]], *, settings: dict[str, str], prepare: bool
) -> None:
    import psycopg

    names = list(settings)
    marks = ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, true)" for i in range(len(names)))
    with psycopg.RawCursor(raw) as cursor:
        # One round trip to read the settings, one pipeline for the rest. The text is
        # only numbered placeholders; names and values are parameters.
        read = "SELECT " + ", ".join(f"current_setting(${i + 1})" for i in range(len(names)))
        cursor.execute(read, names)  # nosemgrep: careloop-no-string-built-sql
        before = cursor.fetchone()
        assert before is not None  # noqa: S101 - a SELECT without FROM gives one row
        apply = f"SELECT {marks}"
        values = [v for n in names for v in (n, settings[n])]
        # One pipeline: the statements go out without waiting for each other's answers
        # (a refresh sends a dozen measures' statements for a patient).
        with raw.pipeline():
            cursor.execute(apply, values)  # nosemgrep: careloop-no-string-built-sql
            for sql, params in statements:
                # The server's own placeholders (careloop.caregaps.evaluate._numbered).
                cursor.execute(sql, params, prepare=prepare)
            # Back to the values before, for the rest of the caller's transaction (a
            # failed statement rolls these back with it).
            restore = [v for n, b in zip(names, before, strict=True) for v in (n, b)]
            cursor.execute(apply, restore)  # nosemgrep: careloop-no-string-built-sql


def current_runs(*, using: str = "default") -> list[MeasureRun]:
    """Per measure, the latest whole-population run: the statuses outreach reads."""
    latest: dict[str, MeasureRun] = {}
    runs = MeasureRun.objects.using(using).filter(whole_population=True, finished_at__isnull=False)
    for run in runs.order_by("measure", "-started_at", "-pk"):
        latest.setdefault(run.measure, run)
    return list(latest.values())


def caregaps_refresh(
    *,
    patient_ids: Sequence[uuid.UUID],
    runs: Sequence[MeasureRun] | None = None,
    using: str = "default",
) -> int:
    """Re-evaluate these patients in every measure's current run (or in `runs`: same
    period, as-of date and horizon), replacing their rows: what an import calls after
    touching them. Returns the number of runs refreshed. Runs in the caller's
    transaction when there is one."""
    ids = list(dict.fromkeys(patient_ids))
    if not ids:
        return 0
    runs = list(runs) if runs is not None else current_runs(using=using)
    with transaction.atomic(using=using):
        for start in range(0, len(ids), REFRESH_CHUNK):
            chunk = ids[start : start + REFRESH_CHUNK]
            oids: set[str] = set()
            for run in runs:
                oids |= _run_compiled(
                    measure_get(run.measure), run, patient_count=len(chunk), using=using
                )[1]
            valuesets_ensure(oids=oids)
            PatientMeasureResult.objects.using(using).filter(
                run__in=runs, patient_id__in=chunk
            ).delete()
            # Every measure's statements in one go: on PostgreSQL one pipeline, not a
            # round trip each.
            statements = [
                statement
                for run in runs
                for statement in _statements(
                    measure_get(run.measure), run, patient_ids=chunk, using=using, ensure=False
                )
            ]
            _execute(statements, population=len(chunk) > CORRELATED_MAX, using=using)
        if runs:
            _audit(None, resource_id=",".join(str(run.pk) for run in runs)[:64])
        care_gaps_after_refresh(runs=runs, patient_ids=ids, using=using)
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
