"""The care-gap lifecycle: open, closed (met / no longer applicable), excluded.

After every whole-population run of a measure (the run becomes its current one) and
after every refresh of the patients an import touched, the gaps follow the statuses,
set-based, in the evaluation's transaction:

1. open gaps whose patient is now `met` or `due_soon` close as met; `excluded` ones
   turn excluded with the reason; those no longer `overdue` for any other reason (out
   of the denominator or the initial population: no row) close as not applicable;
2. a gap closed as met records its closing fact (the latest of the measure's
   `closing` facts on or before the as-of date: the mammogram just imported) and the
   outreach message it is attributed to (`CAREGAP_ATTRIBUTION_DAYS`, default 90: the
   latest message sent to the patient in that many days up to the closing fact's day
   — or the closing itself without a fact —, a message linked to the gap
   (CareGapMessage) first, else a care reminder);
3. patients `overdue` without an open gap get one (INSERT ... SELECT; the partial
   unique index keeps one open gap per patient, measure and group);
4. every change writes one timeline entry (careloop.caregaps.timeline).

`due_soon` opens no gap: it is DEQM's *prospective* gap, read from the current
results (PatientMeasureResult), because it moves with the horizon every day; a gap row
is a lapse with a history (who was asked, what closed it). Each step is one statement
per measure (per 1,000 patients for a refresh): no Python loop over patients.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections, transaction

from careloop.caregaps.dsl import FACT, column
from careloop.caregaps.measure import Measure, measure_get
from careloop.caregaps.models import (
    CareGap,
    CareGapMessage,
    GapResolution,
    GapState,
    GapStatus,
    MeasureRun,
    PatientMeasureResult,
)
from careloop.caregaps.sql import Ctx
from careloop.caregaps.timeline import gap_timeline_sql, new_uuid_sql
from careloop.clinical.models import ClinicalFact
from careloop.consent.models import Purpose
from careloop.core.clock import now
from careloop.outreach.models import Message, MessageStatus
from careloop.patients.models import Patient

SCOPE_CHUNK = 1000


@dataclass
class GapChanges:
    """What one synchronisation did (counts only)."""

    opened: int = 0
    closed: int = 0
    excluded: int = 0

    def add(self, other: GapChanges) -> None:
        self.opened += other.opened
        self.closed += other.closed
        self.excluded += other.excluded


def care_gaps_after_run(*, run: MeasureRun, using: str = "default") -> GapChanges:
    """Bring every gap of the run's measure in line with this whole-population run
    (a run over a few patients is not a measure's current statuses: no change)."""
    if not run.whole_population or not _leading([run], using=using):
        return GapChanges()
    return _sync(run, None, using=using)


def care_gaps_after_refresh(
    *, runs: Sequence[MeasureRun], patient_ids: Sequence[uuid.UUID], using: str = "default"
) -> GapChanges:
    """Bring these patients' gaps in line with the current runs just refreshed."""
    changes = GapChanges()
    ids = list(dict.fromkeys(patient_ids))
    leading = _leading(runs, using=using)
    for start in range(0, len(ids), SCOPE_CHUNK):
        chunk = ids[start : start + SCOPE_CHUNK]
        # Which steps can change anything for these patients: closing needs an open gap
        # of the measure, opening an overdue row of the run. Two queries, so a patient
        # with nothing open and nothing overdue costs two statements, not five or more
        # for every measure (a refresh is what the profile page and an import wait for).
        open_measures = set(
            CareGap.objects.using(using)
            .filter(
                patient_id__in=chunk,
                state=GapState.OPEN,
                measure__in=[run.measure for run in leading],
            )
            .order_by()
            .values_list("measure", flat=True)
            .distinct()
        )
        overdue_runs = set(
            PatientMeasureResult.objects.using(using)
            .filter(run__in=leading, patient_id__in=chunk, status=GapStatus.OVERDUE)
            .order_by()
            .values_list("run_id", flat=True)
            .distinct()
        )
        for run in leading:
            may_close, may_open = run.measure in open_measures, run.pk in overdue_runs
            if may_close or may_open:
                changes.add(_sync(run, chunk, using=using, may_close=may_close, may_open=may_open))
    return changes


def _leading(runs: Sequence[MeasureRun], *, using: str) -> list[MeasureRun]:
    """The runs that lead their measure's gaps, in one query. Gaps follow the present,
    never a look back: a whole-population run as of an earlier day than another of
    the measure (a report on a past period) leaves them."""
    later: dict[str, list[tuple[Any, Any]]] = {}
    rows = MeasureRun.objects.using(using).filter(
        measure__in={run.measure for run in runs}, whole_population=True
    )
    for measure, as_of, pk in rows.values_list("measure", "as_of", "pk"):
        later.setdefault(measure, []).append((as_of, pk))
    return [
        run
        for run in runs
        if not any(
            as_of is not None and run.as_of is not None and as_of > run.as_of and pk != run.pk
            for as_of, pk in later.get(run.measure, ())
        )
    ]


@transaction.atomic
def care_gap_link_message(*, care_gap: CareGap, message: Message) -> CareGapMessage:
    """Record that `message` was sent to ask the patient to close `care_gap` (an
    outreach attempt). Idempotent. Attribution prefers linked messages."""
    if message.patient_id != care_gap.patient_id:
        raise ValueError("a gap's outreach goes to the gap's own patient")
    link, _ = CareGapMessage.objects.get_or_create(
        care_gap=care_gap, message=message, defaults={"linked_at": now()}
    )
    return link


# --- one synchronisation ----------------------------------------------------------------


class _Sql:
    """Table and column names from model metadata, quoted for the connection."""

    def __init__(self, using: str) -> None:
        self.connection = connections[using]
        self.vendor = self.connection.vendor
        q = self.connection.ops.quote_name
        self.q = q
        self.gap = q(CareGap._meta.db_table)
        self.result = q(PatientMeasureResult._meta.db_table)
        self.message = q(Message._meta.db_table)
        self.link = q(CareGapMessage._meta.db_table)

    def g(self, name: str) -> str:
        return self.q(column(CareGap, name))

    def r(self, name: str) -> str:
        return self.q(column(PatientMeasureResult, name))

    def m(self, name: str) -> str:
        return self.q(column(Message, name))

    def f(self, name: str) -> str:
        return self.q(column(ClinicalFact, name))

    def new_uuid(self) -> str:
        return new_uuid_sql(self.vendor)

    def ids(self, patient_ids: Sequence[uuid.UUID]) -> tuple[str, list[Any]]:
        pk = Patient._meta.pk
        assert pk is not None  # noqa: S101 - every model has one
        values = [pk.get_db_prep_value(i, self.connection) for i in patient_ids]
        return ", ".join(["%s"] * len(values)), values

    def dt(self, value: datetime.datetime) -> Any:
        return self.connection.ops.adapt_datetimefield_value(value)

    def day_start(self, instant: str) -> str:
        """The first instant (UTC) of the day of `instant`."""
        if self.vendor == "postgresql":
            return f"(date_trunc('day', ({instant}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"
        return f"datetime({instant}, 'start of day')"

    def minus_days(self, instant: str) -> str:
        """`instant` minus a whole number of days given as the next parameter."""
        if self.vendor == "postgresql":
            return f"({instant} - make_interval(days => %s))"
        return f"datetime({instant}, '-' || %s || ' days')"

    def plus_one_day(self, instant: str) -> str:
        if self.vendor == "postgresql":
            return f"({instant} + interval '1 day')"
        return f"datetime({instant}, '+1 day')"


@dataclass(frozen=True)
class _Step:
    """One synchronisation: its run and measure, its instant, its token, its scope."""

    run: MeasureRun
    measure: Measure
    at: Any  # the instant, adapted for the connection
    token: Any  # the sync token, adapted for the connection
    scope: tuple[str, list[Any]]  # " AND <gap patient> IN (...)", or nothing

    def changed(self, s: _Sql, *, opened: bool) -> tuple[str, list[Any]]:
        """The gaps this synchronisation opened (or closed and excluded): by the
        measure and instant (an index), then exactly by the token."""
        when = s.g("opened_at") if opened else s.g("closed_at")
        return (
            f"{s.gap}.{s.g('measure')} = %s AND {s.gap}.{when} = %s "
            f"AND {s.gap}.{s.g('sync')} = %s{self.scope[0]}",
            [self.measure.id, self.at, self.token, *self.scope[1]],
        )


def _sync(
    run: MeasureRun,
    patient_ids: Sequence[uuid.UUID] | None,
    *,
    using: str,
    may_close: bool = True,
    may_open: bool = True,
) -> GapChanges:
    """Close what is no longer overdue and open what is (`may_close`, `may_open`: the
    caller knows there is nothing to close, or nothing to open)."""
    s = _Sql(using)
    scope: tuple[str, list[Any]] = ("", [])
    if patient_ids is not None:
        if not patient_ids:
            return GapChanges()
        marks, values = s.ids(patient_ids)
        scope = (f" AND {s.gap}.{s.g('patient')} IN ({marks})", values)
    uuid_field = CareGap._meta.get_field("sync")
    step = _Step(
        run=run,
        measure=measure_get(run.measure),
        at=s.dt(now()),
        token=uuid_field.get_db_prep_value(uuid.uuid4(), s.connection),
        scope=scope,
    )
    changes = GapChanges()
    population = patient_ids is None and s.vendor == "postgresql"
    with s.connection.cursor() as cursor:
        if may_close:
            with _hashed(cursor, population):
                changes.closed, changes.excluded = _close(cursor, s, step)
        if changes.closed:
            _record_closing_facts(cursor, s, step, using=using)
            _attribute_messages(cursor, s, step)
        if may_open:
            with _hashed(cursor, population):
                changes.opened = _open(cursor, s, step)
        if changes.opened or changes.closed or changes.excluded:
            for sql, params in gap_timeline_sql(
                s.connection, measure=step.measure, opened=step.changed(s, opened=True),
                ended=step.changed(s, opened=False),
            ):  # fmt: skip
                cursor.execute(sql, params)
        if population:
            # Fresh statistics for the refreshes that follow: they probe the gaps of a
            # few patients, and a planner that thinks the table empty scans it instead.
            # The table's name from model metadata, quoted.
            cursor.execute(f"ANALYZE {s.gap}")  # nosemgrep: careloop-no-string-built-sql
    return changes


@contextmanager
def _hashed(cursor: Any, population: bool) -> Iterator[None]:
    """Over the population (PostgreSQL) each step joins two big sets: hash them.
    Without statistics (a new table, autovacuum behind) the planner takes each set
    for one row and nests loops — minutes instead of a second at 10,000 patients.
    The correlated per-gap lookups (closing fact, message) keep their index probes."""
    if not population:
        yield
        return
    cursor.execute("SELECT current_setting('enable_nestloop')")
    before = cursor.fetchone()[0]
    cursor.execute("SET LOCAL enable_nestloop = off")
    try:
        yield
    finally:
        cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [before])


def _close(cursor: Any, s: _Sql, step: _Step) -> tuple[int, int]:
    """Open gaps whose patient is met (or due soon), excluded, or out of the measure."""
    run = step.run
    open_gaps = f"{s.gap}.{s.g('measure')} = %s AND {s.gap}.{s.g('state')} = %s{step.scope[0]}"
    open_params = [step.measure.id, GapState.OPEN, *step.scope[1]]
    row_of = (
        f"r.{s.r('run')} = %s AND r.{s.r('patient')} = {s.gap}.{s.g('patient')} "
        f"AND r.{s.r('group')} = {s.gap}.{s.g('group')}"
    )
    ended = f"{s.g('closed_at')} = %s, {s.g('closed_run')} = %s, {s.g('sync')} = %s"
    ended_params = [step.at, run.pk, step.token]

    def with_row(*statuses: str) -> tuple[str, list[Any]]:
        marks = ", ".join(["%s"] * len(statuses))
        return (
            f"EXISTS (SELECT 1 FROM {s.result} r WHERE {row_of} "  # noqa: S608
            f"AND r.{s.r('status')} IN ({marks}))",
            [run.pk, *statuses],
        )

    met_sql, met_params = with_row(GapStatus.MET, GapStatus.DUE_SOON)
    cursor.execute(
        f"UPDATE {s.gap} SET {s.g('state')} = %s, {s.g('resolution')} = %s, {ended} "  # noqa: S608
        f"WHERE {open_gaps} AND {met_sql}",
        [GapState.CLOSED, GapResolution.MET, *ended_params, *open_params, *met_params],
    )
    closed = int(cursor.rowcount)
    excluded_sql, excluded_params = with_row(GapStatus.EXCLUDED)
    cursor.execute(
        f"UPDATE {s.gap} SET {s.g('state')} = %s, {ended}, {s.g('reason')} = "  # noqa: S608
        f"COALESCE((SELECT r.{s.r('reason')} FROM {s.result} r WHERE {row_of}), '') "
        f"WHERE {open_gaps} AND {excluded_sql}",
        [GapState.EXCLUDED, *ended_params, run.pk, *open_params, *excluded_params],
    )
    excluded = int(cursor.rowcount)
    # Neither met nor excluded nor still overdue: out of the denominator, or no row
    # at all (out of the initial population).
    overdue_sql, overdue_params = with_row(GapStatus.OVERDUE)
    cursor.execute(
        f"UPDATE {s.gap} SET {s.g('state')} = %s, {s.g('resolution')} = %s, {ended} "  # noqa: S608
        f"WHERE {open_gaps} AND NOT {overdue_sql}",
        [
            GapState.CLOSED,
            GapResolution.NOT_APPLICABLE,
            *ended_params,
            *open_params,
            *overdue_params,
        ],
    )
    return closed + int(cursor.rowcount), excluded


def _record_closing_facts(cursor: Any, s: _Sql, step: _Step, *, using: str) -> None:
    """closing_fact: the latest closing fact (on or before the as-of day) of each gap
    just closed as met; one UPDATE per closing, each keeping the later fact."""
    run = step.run
    assert run.as_of is not None  # noqa: S101 - every run since 0002 has one
    start = datetime.datetime.combine(run.period_start, datetime.time(), tzinfo=datetime.UTC)
    end = datetime.datetime.combine(run.period_end, datetime.time(23, 59, 59), tzinfo=datetime.UTC)
    ctx = Ctx(start=start, end=end, vendor=s.vendor, using=using, correlated=True)
    ended_sql, ended_params = step.changed(s, opened=False)
    kept = (
        f"(SELECT COALESCE(k.{s.f('effective_end')}, k.{s.f('effective_start')}) "  # noqa: S608
        f"FROM {FACT} k WHERE k.id = {s.gap}.{s.g('closing_fact')})"
    )
    for closing in step.measure.closing:
        row, (frm, params) = closing.facts.select(ctx)
        latest = row.latest.expr
        where = (
            f"{frm} AND {row.c('patient')} = {s.gap}.{s.g('patient')} "
            f"AND {latest} IS NOT NULL AND {ctx.day(latest)} <= %s"
        )
        where_params = [*params, ctx.date(run.as_of)]
        cursor.execute(
            f"UPDATE {s.gap} SET {s.g('closing_fact')} = "  # noqa: S608
            f"(SELECT {row.c('id')} {where} ORDER BY {latest} DESC, {row.c('id')} DESC LIMIT 1) "
            f"WHERE {ended_sql} AND {s.gap}.{s.g('resolution')} = %s "
            f"AND ({s.gap}.{s.g('closing_fact')} IS NULL "
            f"OR {kept} < (SELECT MAX({latest}) {where}))",
            [*where_params, *ended_params, GapResolution.MET, *where_params],
        )


def _attribute_messages(cursor: Any, s: _Sql, step: _Step) -> None:
    """attributed_message: the latest message sent to the patient in the attribution
    window up to the closing event's day: one linked to the gap if any (first
    statement), else a care reminder (second)."""
    ended_sql, ended_params = step.changed(s, opened=False)
    event = (
        f"COALESCE((SELECT COALESCE(k.{s.f('effective_end')}, k.{s.f('effective_start')}) "  # noqa: S608
        f"FROM {FACT} k WHERE k.id = {s.gap}.{s.g('closing_fact')}), {s.gap}.{s.g('closed_at')})"
    )
    day = s.day_start(event)
    link_message = s.q(column(CareGapMessage, "message"))
    link_gap = s.q(column(CareGapMessage, "care_gap"))
    window_days: int = settings.CAREGAP_ATTRIBUTION_DAYS
    sent = (
        f"m.{s.m('patient')} = {s.gap}.{s.g('patient')} "
        f"AND m.{s.m('status')} IN (%s, %s) AND m.{s.m('sent_at')} IS NOT NULL "
        f"AND m.{s.m('sent_at')} < {s.plus_one_day(day)} "
        f"AND m.{s.m('sent_at')} >= {s.minus_days(day)}"
    )
    sent_params = [MessageStatus.SENT, MessageStatus.DELIVERED, window_days]
    latest = f"ORDER BY m.{s.m('sent_at')} DESC, m.id LIMIT 1"
    linked = (
        f"SELECT m.id FROM {s.message} m JOIN {s.link} l ON l.{link_message} = m.id "  # noqa: S608
        f"WHERE l.{link_gap} = {s.gap}.{s.q('id')} AND {sent} {latest}"
    )
    reminder = f"SELECT m.id FROM {s.message} m WHERE {sent} AND m.{s.m('purpose')} = %s {latest}"  # noqa: S608
    target = f"UPDATE {s.gap} SET {s.g('attributed_message')} = "  # noqa: S608
    only = f"WHERE {ended_sql} AND {s.gap}.{s.g('resolution')} = %s"
    # Identifiers from model metadata, quoted; every value is a parameter.
    linked_params = [*sent_params, *ended_params, GapResolution.MET]
    by_link = f"{target}({linked}) {only}"
    cursor.execute(by_link, linked_params)  # nosemgrep: careloop-no-string-built-sql
    unlinked = f"{target}({reminder}) {only} AND {s.gap}.{s.g('attributed_message')} IS NULL"
    reminder_params = [*sent_params, Purpose.CARE_REMINDER, *ended_params, GapResolution.MET]
    cursor.execute(unlinked, reminder_params)  # nosemgrep: careloop-no-string-built-sql


def _open(cursor: Any, s: _Sql, step: _Step) -> int:
    """A gap for every overdue patient of the run without an open one."""
    names = ["id", "patient", "measure", "group", "state", "opened_at", "opened_run"]
    names += ["due_date", "resolution", "reason", "sync"]
    targets = ", ".join(s.g(n) for n in names)
    scope_sql = step.scope[0].replace(f"{s.gap}.{s.g('patient')}", f"r.{s.r('patient')}")
    sql = (
        f"INSERT INTO {s.gap} ({targets}) "  # noqa: S608
        f"SELECT {s.new_uuid()}, r.{s.r('patient')}, %s, r.{s.r('group')}, %s, %s, %s, "
        f"r.{s.r('due_date')}, '', '', %s FROM {s.result} r "
        f"WHERE r.{s.r('run')} = %s AND r.{s.r('status')} = %s{scope_sql} "
        f"AND NOT EXISTS (SELECT 1 FROM {s.gap} o WHERE o.{s.g('patient')} = r.{s.r('patient')} "
        f"AND o.{s.g('measure')} = %s AND o.{s.g('group')} = r.{s.r('group')} "
        f"AND o.{s.g('state')} = %s) "
        # A refresh racing a whole-population run: the one-open index decides.
        "ON CONFLICT DO NOTHING"
    )
    run = step.run
    params = [step.measure.id, GapState.OPEN, step.at, run.pk, step.token, run.pk]
    params += [GapStatus.OVERDUE, *step.scope[1], step.measure.id, GapState.OPEN]
    cursor.execute(sql, params)
    return int(cursor.rowcount)
