"""The measure language: retrieves of clinical facts, their timing, patient predicates.

A measure is written with these pieces so that it reads like its CQL:

    MAMMOGRAPHY = valueset("Mammography", "2.16.840.1.113883.3.464.1003.108.12.1018")
    mammogram = observations(MAMMOGRAPHY).diagnostic_study_performed().where(
        lambda o: o.period.ends_during_day(Span(october_1_two_years_before, MP.end))
    )
    numerator = exists(mammogram)

`Facts` is a retrieve ([Observation: "Mammography"]) with filters; `where` takes a
function of a `Row` (one fact of the retrieve) and returns a condition on it.
`exists(facts)` is a patient predicate; predicates combine with `&`, `|`, `~`.
Everything compiles to SQL over ClinicalFact and Patient for the whole population
(careloop.caregaps.evaluate): a retrieve becomes `p.id IN (SELECT f.patient_id FROM
clinical facts f WHERE ...)`, a relationship between two retrieves (`with_`,
`without`) a correlated EXISTS on the same patient.

Semantics kept from CQL (they decide official test cases):
- a FHIR Period with no end is an interval closed at the end of time; a Condition's
  prevalence interval without abatement is open-ended when the condition is active
  and of unknown end otherwise (careloop.caregaps.dsl.RowInterval);
- "day of" comparisons compare UTC calendar days; others compare instants;
- an interval missing both start and end is null: no comparison holds.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models

from careloop.caregaps.sql import (
    DAY,
    FALSE,
    TRUE,
    Cond,
    Ctx,
    Fragment,
    Instant,
    Lazy,
    Raw,
    add_months,
    add_years,
    all_of,
    any_of,
    floor_day,
)
from careloop.clinical.models import ClinicalFact
from careloop.patients.models import Patient

FACT = ClinicalFact._meta.db_table
PATIENT = Patient._meta.db_table
# The facts' (patient, kind) index (ClinicalFact.Meta.indexes), for a SQLite hint.
PATIENT_KIND_INDEX = next(
    index.name
    for index in ClinicalFact._meta.indexes
    if list(index.fields) == ["patient", "kind"] and index.name
)
# Its (source system, resource type, source id, part) unique index: a resource's rows.
SOURCE_IDENTITY_INDEX = next(
    c.name
    for c in ClinicalFact._meta.constraints
    if isinstance(c, models.UniqueConstraint) and "source_id" in c.fields
)
P = "p"  # the alias of the patient row in every population query


def column(model: type[models.Model], name: str) -> str:
    """A column name from model metadata (so a rename cannot go unnoticed)."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise TypeError(f"{model.__name__}.{name} is not a concrete field")
    return field.column


def col(name: str) -> str:
    return column(ClinicalFact, name)


def pcol(name: str) -> str:
    return column(Patient, name)


# --- terminology ----------------------------------------------------------------------


@dataclass(frozen=True)
class ValueSetRef:
    name: str
    oid: str


@dataclass(frozen=True)
class Code:
    code: str
    system: str
    display: str = ""


def valueset(name: str, oid: str) -> ValueSetRef:
    return ValueSetRef(name, oid)


SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

# Value sets a compilation used, so evaluation can make sure they are loaded first.
USED_VALUESETS = "valuesets"


def _member(ctx: Ctx, alias: str, refs: tuple[ValueSetRef | Code, ...], *, value: bool) -> Cond:
    """The row's code (or coded value) is in one of the value sets or is one of the codes.

    The sets' codes are compiled in as parameters, per code system: the planner then
    knows how many facts each code has (the (kind, code) index and its statistics)
    instead of guessing at a join with the terminology tables.
    """
    from careloop.caregaps.terminology import valueset_members

    system, code = (
        (col("value_system"), col("value_code")) if value else (col("system"), col("code"))
    )
    oids = [r.oid for r in refs if isinstance(r, ValueSetRef)]
    ctx.valuesets.update(oids)
    if ctx.correlated:
        return _member_correlated(alias, refs, system=system, code=code)
    by_system: dict[str, set[str]] = {
        s: set(codes) for s, codes in valueset_members(oids=oids, using=ctx.using).items()
    }
    for ref in refs:
        if isinstance(ref, Code):
            by_system.setdefault(ref.system, set()).add(ref.code)
    if not by_system:
        return FALSE
    every = sorted(set().union(*by_system.values()))
    texts: list[str] = []
    exact_params: list[Any] = []
    for name, codes in by_system.items():
        text, params = ctx.in_list(f"{alias}.{code}", sorted(codes))
        texts.append(f"({alias}.{system} = %s AND {text})")
        exact_params.extend([name, *params])
    exact = " OR ".join(texts)
    if len(by_system) == 1:
        return Raw(f"({exact})", tuple(exact_params))
    # Several systems: every code first, so one index probe serves them all.
    lead, lead_params = ctx.in_list(f"{alias}.{code}", every)
    return Raw(f"{lead} AND ({exact})", (*lead_params, *exact_params))


def _member_correlated(
    alias: str, refs: tuple[ValueSetRef | Code, ...], *, system: str, code: str
) -> Cond:
    """For a few patients the (patient, kind) index leads and the code is checked per
    fact against the terminology table: planning a statement with every code as a
    parameter would cost more than running it."""
    from careloop.caregaps.models import ValueSetCode

    conds: list[Cond] = []
    oids = tuple(r.oid for r in refs if isinstance(r, ValueSetRef))
    if oids:
        marks = ", ".join(["%s"] * len(oids))
        conds.append(
            Raw(
                f"EXISTS (SELECT 1 FROM {ValueSetCode._meta.db_table} v "  # noqa: S608
                f"WHERE v.value_set_id IN ({marks}) "
                f"AND v.system = {alias}.{system} AND v.code = {alias}.{code})",
                oids,
            )
        )
    # `|| ''` keeps the code's column off the (kind, code) index: with a generic plan,
    # PostgreSQL ANDed that index's bitmap with the patient's and read every fact of
    # the code in the practice for one patient (CMS69's BMI code: 19,551 at 5,000
    # patients, per criterion).
    conds.extend(
        Raw(f"{alias}.{system} = %s AND {alias}.{code} || '' = %s", (ref.system, ref.code))
        for ref in refs
        if isinstance(ref, Code)
    )
    return any_of(*conds)


# --- time -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """An interval whose ends are known once the period is (the period, a lookback)."""

    low: Instant
    high: Instant
    high_open: bool = False

    def minus_years(self, years: int) -> Span:
        return Span(lambda c: add_years(self.low(c), -years), self.high, self.high_open)


def _mp_start(ctx: Ctx) -> datetime.datetime:
    return ctx.start


def _mp_end(ctx: Ctx) -> datetime.datetime:
    return ctx.end


class MeasurementPeriod(Span):
    @property
    def start(self) -> Instant:
        return _mp_start

    @property
    def end(self) -> Instant:
        return _mp_end


MP = MeasurementPeriod(_mp_start, _mp_end)


def years_before_start(years: int) -> Instant:
    return lambda c: add_years(c.start, -years)


def months_after_start(months: int) -> Instant:
    return lambda c: add_months(c.start, months)


def months_before_start(months: int) -> Instant:
    return lambda c: add_months(c.start, -months)


def date_in_start_year(years: int, month: int, day: int) -> Instant:
    """DateTime((year from start of "Measurement Period" + years), month, day)."""
    return lambda c: datetime.datetime(c.start.year + years, month, day, tzinfo=datetime.UTC)


def _day_bounds(ctx: Ctx, span: Span) -> tuple[Any, Any]:
    """[first instant of the low day, first instant after the high day)."""
    return ctx.dt(floor_day(span.low(ctx))), ctx.dt(floor_day(span.high(ctx)) + DAY)


@dataclass(frozen=True)
class Point:
    """A point in time of a row: a timestamp column expression (may be NULL)."""

    expr: str

    def during_day(self, span: Span | RowInterval) -> Cond:
        if isinstance(span, RowInterval):
            return Lazy(lambda c: self._within_row(c, span))
        e = self.expr
        return Raw(f"{e} >= %s AND {e} < %s", lambda c: list(_day_bounds(c, span)))

    def during(self, span: Span) -> Cond:
        e = self.expr
        op = "<" if span.high_open else "<="
        return Raw(f"{e} >= %s AND {e} {op} %s", lambda c: [c.dt(span.low(c)), c.dt(span.high(c))])

    def _within_row(self, ctx: Ctx, other: RowInterval) -> Cond:
        day, start, end = ctx.day(self.expr), ctx.day(other.start), ctx.day(other.end)
        return Raw(
            f"{self.expr} IS NOT NULL AND ({other.start} IS NULL OR {day} >= {start}) "
            f"AND ({other.end} IS NULL OR {day} <= {end}) "
            f"AND NOT ({other.start} IS NULL AND {other.end} IS NULL)"
        )

    def on_or_before(self, instant: Instant, *, day: bool = False) -> Cond:
        if day:
            return Raw(f"{self.expr} < %s", lambda c: [c.dt(floor_day(instant(c)) + DAY)])
        return Raw(f"{self.expr} <= %s", lambda c: [c.dt(instant(c))])

    def same_day_as(self, other: Point) -> Cond:
        return Lazy(lambda c: Raw(f"{c.day(self.expr)} = {c.day(other.expr)}"))

    def is_null(self) -> Cond:
        return Raw(f"{self.expr} IS NULL")

    def within_days_before_day_of(self, other: Point, days: int) -> Cond:
        """ "`days` days or less on or before day of" other: the day of this point lies
        in [day of other - days, day of other]."""

        def build(c: Ctx) -> Cond:
            mine, theirs = c.day(self.expr), c.day(other.expr)
            return Raw(
                f"{mine} <= {theirs} AND {mine} >= {c.add_days(theirs)}", (c.int_param(-days),)
            )

        return Lazy(build)

    def within_days_after_day_of(self, other: Point, days: int) -> Cond:
        """ "`days` days or less on or after day of" other."""

        def build(c: Ctx) -> Cond:
            mine, theirs = c.day(self.expr), c.day(other.expr)
            return Raw(
                f"{mine} >= {theirs} AND {mine} <= {c.add_days(theirs)}", (c.int_param(days),)
            )

        return Lazy(build)

    def day_after_day_of(self, other: Point) -> Cond:
        """ "1 day or more after day of" other."""
        return Lazy(
            lambda c: Raw(
                f"{self.expr} IS NOT NULL AND {other.expr} IS NOT NULL "
                f"AND {c.day(self.expr)} > {c.day(other.expr)}"
            )
        )

    def during_row(self, other: RowInterval) -> Cond:
        """This instant lies in the row's interval (to the instant; no end: still going)."""
        s, e = other.start, other.end
        return Raw(
            f"{self.expr} IS NOT NULL AND ({s} IS NULL OR {self.expr} >= {s}) "
            f"AND ({e} IS NULL OR {self.expr} <= {e}) AND NOT ({s} IS NULL AND {e} IS NULL)"
        )

    def day_in_life(self, row: Row, low: tuple[int, int], high: tuple[int, int]) -> Cond:
        """The day of this point lies in [birth date + low, birth date + high], each a
        (years, days) offset: CMS117's "First Two Years", "42 Days up to 2 Years Old"."""

        def build(c: Ctx) -> Cond:
            day = c.day(self.expr)
            after = c.add_days(c.add_years(BORN))
            until = c.add_days(c.add_years(BORN))
            return _of_patient(
                row,
                f"{self.expr} IS NOT NULL AND {day} >= {after} AND {day} <= {until}",
                (
                    c.int_param(low[0]),
                    c.int_param(low[1]),
                    c.int_param(high[0]),
                    c.int_param(high[1]),
                ),
            )

        return Lazy(build)

    def age_at_least(self, row: Row, years: int) -> Cond:
        """AgeInYearsAt(date from this point) >= years, for the row's patient."""

        def build(c: Ctx) -> Cond:
            return _of_patient(
                row, f"{c.day(self.expr)} >= {c.add_years(BORN)}", (c.int_param(years),)
            )

        return Lazy(build)


# The birth date in a condition on a row's patient (`_of_patient`).
BORN = f"pb.{pcol('birth_date')}"


def _of_patient(row: Row, text: str, params: tuple[Any, ...]) -> Cond:
    """The condition `text` (where `BORN` is the birth date) holds for the row's
    patient. A semi-join, not a scalar subquery per fact: over the population
    PostgreSQL hashes the patients once instead of looking up each fact's patient
    (160,000 lookups in CMS69's initial population at 100,000 patients)."""
    patient = f"{row.alias}.{col('patient')}"
    return Raw(
        f"EXISTS (SELECT 1 FROM {PATIENT} pb WHERE pb.id = {patient} AND {text})",  # noqa: S608
        params,
    )


@dataclass(frozen=True)
class RowInterval:
    """The interval of a row: [start, end] with the null rules of its kind.

    `open_end_when` is a condition under which a missing end means "still going" (an
    active condition); where it does not hold, a missing end is unknown — the interval
    lies somewhere after its start. For plain FHIR periods it is always "still going".
    """

    start: str
    end: str
    open_end_when: Cond = TRUE

    def _not_null(self) -> str:
        return f"NOT ({self.start} IS NULL AND {self.end} IS NULL)"

    def during_day(self, span: Span) -> Cond:
        s, e = self.start, self.end
        return Raw(
            f"{s} >= %s AND {e} IS NOT NULL AND {e} < %s", lambda c: list(_day_bounds(c, span))
        )

    def ends_during_day(self, span: Span) -> Cond:
        return Point(self.end).during_day(span)

    def starts_during_day(self, span: Span) -> Cond:
        return Point(self.start).during_day(span)

    def overlaps_day(self, span: Span) -> Cond:
        return Lazy(lambda c: self._overlaps(*_day_bounds(c, span), high_op="<"))

    def overlaps(self, span: Span) -> Cond:
        op = "<" if span.high_open else "<="
        return Lazy(lambda c: self._overlaps(c.dt(span.low(c)), c.dt(span.high(c)), high_op=op))

    def _overlaps(self, low: Any, high: Any, *, high_op: str) -> Cond:
        s, e = self.start, self.end
        starts_in_time = Raw(f"{s} IS NULL OR {s} {high_op} %s", (high,))
        ends_in_time = (
            Raw(f"{e} >= %s", (low,))
            | (Raw(f"{e} IS NULL") & self.open_end_when)
            # An unknown end still lies after the start.
            | Raw(f"{e} IS NULL AND {s} >= %s", (low,))
        )
        return Raw(self._not_null()) & starts_in_time & ends_in_time

    def starts_on_or_before(self, instant: Instant, *, day: bool = False) -> Cond:
        s = self.start
        if day:
            return Raw(f"{s} IS NULL OR {s} < %s", lambda c: [c.dt(floor_day(instant(c)) + DAY)])
        return Raw(f"{s} IS NULL OR {s} <= %s", lambda c: [c.dt(instant(c))])

    def ends_on_or_before(self, instant: Instant, *, day: bool = False) -> Cond:
        e = self.end
        if day:
            return Raw(f"{e} < %s", lambda c: [c.dt(floor_day(instant(c)) + DAY)])
        return Raw(f"{e} <= %s", lambda c: [c.dt(instant(c))])

    def ends_before_day_of(self, point: Point) -> Cond:
        """The interval ends before the day of `point` (a known end only)."""
        return Lazy(
            lambda c: Raw(f"{self.end} IS NOT NULL AND {c.day(self.end)} < {c.day(point.expr)}")
        )

    def overlaps_after_day(self, other: RowInterval) -> Cond:
        """ "overlaps after day of" other: they share a day and this one ends on a later
        day. This interval must have a known end (a null interval overlaps nothing)."""

        def build(c: Ctx) -> Cond:
            s, e = c.day(self.start), c.day(self.end)
            os_, oe = c.day(other.start), c.day(other.end)
            return Raw(
                f"{self.start} IS NOT NULL AND {self.end} IS NOT NULL "
                f"AND {other.end} IS NOT NULL AND {s} <= {oe} AND {e} > {oe} "
                f"AND ({other.start} IS NULL OR {e} >= {os_})"
            )

        return Lazy(build)

    def starts_before_day_of(self, point: Point) -> Cond:
        return Lazy(
            lambda c: Raw(f"{self.start} IS NULL OR {c.day(self.start)} < {c.day(point.expr)}")
        )

    def starts_on_or_before_day_of(self, point: Point) -> Cond:
        return Lazy(
            lambda c: Raw(f"{self.start} IS NULL OR {c.day(self.start)} <= {c.day(point.expr)}")
        )


ACTIVE_CLINICAL = ("active", "recurrence", "relapse")


class Row:
    """One fact of a retrieve, as seen by a `where` function."""

    def __init__(self, alias: str, kind: str = "") -> None:
        self.alias = alias
        # The kind of fact the row is, when the retrieve knows it ("" otherwise).
        self.kind = kind

    def c(self, name: str) -> str:
        return f"{self.alias}.{col(name)}"

    # timing
    @property
    def period(self) -> RowInterval:
        """effective/performed/occurrence/period.toInterval()."""
        return RowInterval(self.c("effective_start"), self.c("effective_end"))

    @property
    def prevalence(self) -> RowInterval:
        """A Condition's prevalenceInterval(): onset to abatement."""
        status = self.c("status")
        return RowInterval(
            self.c("effective_start"),
            self.c("effective_end"),
            Raw(f"{status} IN (%s, %s, %s)", ACTIVE_CLINICAL),
        )

    @property
    def latest(self) -> Point:
        """.latest(): the end of the interval when it has one, else its start."""
        return Point(f"COALESCE({self.c('effective_end')}, {self.c('effective_start')})")

    @property
    def start(self) -> Point:
        return Point(self.c("effective_start"))

    @property
    def end(self) -> Point:
        return Point(self.c("effective_end"))

    @property
    def recorded(self) -> Point:
        """authoredOn, recordedDate, issued."""
        return Point(self.c("recorded_at"))

    @property
    def performed_or_authored(self) -> Point:
        """Coalesce(performed.toInterval(), authoredOn.toInterval()): its start."""
        return Point(f"COALESCE({self.c('effective_start')}, {self.c('recorded_at')})")

    # values
    def value_is_not_null(self) -> Cond:
        return Raw(f"({self.c('value_num')} IS NOT NULL OR {self.c('value_code')} <> '')")

    def quantity_is_null(self) -> Cond:
        """`value as Quantity` is null: no value, or a value that is not a number."""
        return Raw(f"{self.c('value_num')} IS NULL")

    def value_num(self, op: str, number: float) -> Cond:
        if op not in {"<", "<=", ">", ">=", "="}:
            raise ValueError(op)
        return Raw(f"{self.c('value_num')} {op} %s", (number,))

    def value_in(self, *refs: ValueSetRef | Code) -> Cond:
        return Lazy(lambda c: _member(c, self.alias, refs, value=True))

    def code_is(self, code: Code) -> Cond:
        return Raw(f"{self.c('system')} = %s AND {self.c('code')} = %s", (code.system, code.code))

    def status_in(self, *statuses: str) -> Cond:
        marks = ", ".join(["%s"] * len(statuses))
        return Raw(f"{self.c('status')} IN ({marks})", statuses)

    def category_is(self, code: str) -> Cond:
        return Raw(f"{self.c('category')} = %s", (code,))

    def category_in(self, *codes: str) -> Cond:
        marks = ", ".join(["%s"] * len(codes))
        return Raw(f"{self.c('category')} IN ({marks})", codes)

    def is_encounter_of(self, other: Row) -> Cond:
        """This row (an Encounter) is the encounter the other row names
        (`other.encounter`, same source)."""
        return Raw(
            f"{self.c('resource_type')} = %s "
            f"AND {self.c('source_id')} = {other.c('encounter_ref')} "
            f"AND {self.c('source_system')} = {other.c('source_system')} "
            f"AND {other.c('encounter_ref')} <> ''",
            ("Encounter",),
        )

    def intent_in(self, *intents: str) -> Cond:
        marks = ", ".join(["%s"] * len(intents))
        return Raw(f"{self.c('intent')} IN ({marks})", intents)

    def negated(self) -> Cond:
        return Raw(f"{self.c('negated')} = %s", (True,))

    def verified(self) -> Cond:
        """Status.verified(): no verification status, or one that is not a refutation."""
        return Raw(
            f"{self.c('value_code')} IN (%s, %s, %s, %s, %s)",
            ("", "confirmed", "unconfirmed", "provisional", "differential"),
        )

    def part(
        self,
        element: str,
        *refs: ValueSetRef | Code,
        where: Callable[[Row], Cond] | None = None,
    ) -> Cond:
        """Another coded element of the same resource (a reason, a component, the
        class) is in the value sets / codes and satisfies `where`."""

        def build(c: Ctx) -> Cond:
            other = Row(c.alias("s"), self.kind)
            identity = " AND ".join(
                f"{other.c(n)} = {self.c(n)}"
                for n in ("source_system", "resource_type", "source_id")
            )
            conds: list[Cond] = [Raw(f"{other.c('element')} = %s", (element,))]
            if self.kind:
                # A resource's parts are of its kind: over the population the parts
                # are then read among the kind's facts, not the whole table.
                conds.append(Raw(f"{other.c('kind')} = %s", (self.kind,)))
            if refs:
                conds.append(_member(c, other.alias, refs, value=False))
            if where is not None:
                conds.append(where(other))
            text, params = all_of(*conds).sql(c)
            # The identity's partial unique index serves, its condition written as the
            # index has it (SQLite matches it word for word); SQLite is also told to
            # use it: it would otherwise read every fact of the code per row.
            hint = f" INDEXED BY {SOURCE_IDENTITY_INDEX}" if c.vendor == "sqlite" else ""
            return Raw(
                f"EXISTS (SELECT 1 FROM {FACT} {other.alias}{hint} WHERE {identity} "  # noqa: S608
                f"AND NOT ({other.c('resource_type')} = '') AND {text})",
                tuple(params),
            )

        return Lazy(build)


# --- retrieves ------------------------------------------------------------------------

Where = Callable[[Row], Cond]


@dataclass(frozen=True)
class Facts:
    """A retrieve: facts of one kind whose code is in value sets, plus conditions."""

    kind: str
    refs: tuple[ValueSetRef | Code, ...] = ()
    resource_types: tuple[str, ...] = ()
    element: str = "code"
    conds: tuple[Where, ...] = ()
    # True: any code (a retrieve of a profile is narrowed with `where`).
    any_code: bool = False
    # A retrieve sees what was done; `not_done()` turns it to what was documented as
    # not done (QI-Core's ...NotDone / ...NotRequested profiles).
    negated: bool | None = False
    # `define()`: these facts are a named expression of the measure (a CQL `define`
    # that several criteria read), selected once per evaluation over the population
    # into a table of their own; `conds` then narrow what was selected.
    defined: Facts | None = None

    def define(self) -> Facts:
        """These facts as a definition: computed once per evaluation, however many
        criteria read them (CMS165's "readings on the most recent day" feed four)."""
        return Facts(
            kind=self.kind,
            resource_types=self.resource_types,
            element=self.element,
            any_code=True,
            negated=None,
            defined=self,
        )

    def not_done(self) -> Facts:
        if self.defined is not None:
            raise ValueError("a definition is not a retrieve; use not_done() before define()")
        return dataclasses.replace(self, negated=True)

    def cancelled(self) -> Facts:
        """QI-Core's ...Cancelled profiles: status cancelled, with or without a notDone
        flag."""
        return dataclasses.replace(self, negated=None).where(lambda r: r.status_in("cancelled"))

    def where(self, *conds: Where) -> Facts:
        return dataclasses.replace(self, conds=self.conds + conds)

    def union(self, other: Facts) -> Facts:
        """Both retrieves (same kind and filters): their codes together."""
        if self.defined is not None or other.defined is not None:
            raise ValueError("a definition is not a retrieve; unite the retrieves first")
        if (self.kind, self.resource_types, self.element, self.conds) != (
            other.kind,
            other.resource_types,
            other.element,
            other.conds,
        ):
            raise ValueError("only retrieves of the same kind and filters can be united")
        return dataclasses.replace(self, refs=self.refs + other.refs)

    def with_(self, other: Facts, such_that: Callable[[Row, Row], Cond]) -> Facts:
        return self.where(lambda row: _related(row, other, such_that))

    def without(self, other: Facts, such_that: Callable[[Row, Row], Cond]) -> Facts:
        return self.where(lambda row: ~_related(row, other, such_that))

    def matches(self, ctx: Ctx, row: Row) -> Cond:
        """The conditions that make `row` one of these facts."""
        if self.defined is not None:
            return all_of(self.defined.matches(ctx, row), *(cond(row) for cond in self.conds))
        conds: list[Cond] = [
            Raw(f"{row.c('kind')} = %s", (self.kind,)),
            Raw(f"{row.c('element')} = %s", (self.element,)),
        ]
        if self.negated is not None:
            conds.append(Raw(f"{row.c('negated')} = %s", (self.negated,)))
        if self.resource_types:
            marks = ", ".join(["%s"] * len(self.resource_types))
            conds.append(Raw(f"{row.c('resource_type')} IN ({marks})", self.resource_types))
        if not self.any_code:
            conds.append(_member(ctx, row.alias, self.refs, value=False))
        conds.extend(cond(row) for cond in self.conds)
        return all_of(*conds)

    def select(self, ctx: Ctx, *, by_patient: bool = False) -> tuple[Row, Fragment]:
        """`FROM facts alias WHERE ...` for these facts; the caller picks columns.

        `by_patient`: the caller ties the facts to one patient (a correlated
        relationship). SQLite is then told to use the (patient, kind) index: left to
        itself it probes the (kind, code) index with every code of the value sets and
        reads the whole practice's facts of those codes once per outer row (67 s for
        one CMS165 set at 3,000 patients).
        """
        row = Row(ctx.alias(), self.kind)
        table = self._defined_table(ctx)
        if table is not None:
            text, more = all_of(*(cond(row) for cond in self.conds)).sql(ctx)
            return row, (f"FROM {table} {row.alias} WHERE {text}", more)
        text, params = self.matches(ctx, row).sql(ctx)
        hint = f" INDEXED BY {PATIENT_KIND_INDEX}" if by_patient and ctx.vendor == "sqlite" else ""
        return row, (f"FROM {FACT} {row.alias}{hint} WHERE {text}", params)

    def _defined_table(self, ctx: Ctx) -> str | None:
        """The table a definition's facts are selected into over the population (None:
        not a definition, one patient, or facts that name an outer row). When an
        earlier criterion selected it for the whole practice (the initial population
        reads it before the population is known), that one serves: the callers keep to
        the population themselves; else it is selected for the current population."""
        if self.defined is None or not ctx.materialize or ctx.correlated:
            return None
        inner, (frm, params) = self.defined.select(ctx)
        if not _self_contained(frm):
            return None
        whole = f"SELECT {inner.alias}.* {frm}"
        within = ctx.only_within(inner.c("patient"))
        if within:
            made = ctx.existing_fact_table(whole, params)
            if made is not None:
                return made
        return ctx.fact_table(whole + within, params)

    def on_most_recent_day(self, point: Callable[[Row], Point] = lambda r: r.latest) -> Facts:
        """The facts on the patient's latest day among these facts (the day of
        `point`): "... same day as Most Recent ... Date"."""
        return self._on_latest(point, day=True)

    def most_recent(self, point: Callable[[Row], Point] = lambda r: r.start) -> Facts:
        """Last(these facts sort by `point`): the facts at the patient's latest instant."""
        return self._on_latest(point, day=False)

    def _on_latest(self, point: Callable[[Row], Point], *, day: bool) -> Facts:
        base = self

        def latest(row: Row) -> Cond:
            def build(c: Ctx) -> Cond:
                inner, (frm, params) = base.select(c, by_patient=c.correlated)
                inner_sql, row_sql = point(inner).expr, point(row).expr
                if day:
                    inner_sql, row_sql = c.day(inner_sql), c.day(row_sql)
                if c.correlated:
                    # Tied to the statement's patient, not to the row's (the same one),
                    # the latest is computed once per patient, not again for every row.
                    patient = f"{P}.id" if c.patient_in_scope else row.c("patient")
                    correlated = f"{inner.c('patient')} = {patient}"
                    return Raw(
                        f"{row_sql} = (SELECT MAX({inner_sql}) {frm} AND {correlated})",
                        tuple(params),
                    )
                # Over the population: each patient's latest once, not once per row.
                # On SQLite `+` keeps the patient column off the (patient, kind) index,
                # which would read every fact of the kind of each patient listed.
                patient = inner.c("patient")
                unindexed = "+" if c.vendor == "sqlite" else ""
                return Raw(
                    f"({unindexed}{row.c('patient')}, {row_sql}) IN "
                    f"(SELECT {patient}, MAX({inner_sql}) "
                    f"{frm}{c.only_within(patient)} GROUP BY {patient})",
                    tuple(params),
                )

            return Lazy(build)

        return self.where(latest)


_ALIAS_USED = re.compile(r"\b([fs]\d+)\.")
_ALIAS_MADE = re.compile(rf"\b(?:{FACT}|cg_facts_\d+) ([fs]\d+)\b")


def _self_contained(sql: str) -> bool:
    """Does the select name only rows it reads itself? A retrieve whose conditions
    name an outer row (CMS2's medication "with" a screening) cannot be selected once
    for everyone."""
    return set(_ALIAS_USED.findall(sql)) <= set(_ALIAS_MADE.findall(sql))


def _related(row: Row, other: Facts, such_that: Callable[[Row, Row], Cond]) -> Cond:
    def build(c: Ctx) -> Cond:
        # A definition as it is: its table serves as the other side, no copy.
        table = None if other.conds else other._defined_table(c)
        if table is None and c.materialize and not c.correlated:
            chosen, (frm, params) = other.select(c)
            if _self_contained(frm):
                # Over the population: the other facts once, into a table of their own
                # (indexed by patient); each row then looks among its patient's few.
                within = c.only_within(chosen.c("patient"))
                table = c.fact_table(f"SELECT {chosen.alias}.* {frm}{within}", params)
        if table is not None:
            inner = Row(c.alias(), other.kind)
            text, more = such_that(row, inner).sql(c)
            return Raw(
                f"EXISTS (SELECT 1 FROM {table} {inner.alias} "  # noqa: S608
                f"WHERE {inner.c('patient')} = {row.c('patient')} AND ({text}))",
                tuple(more),
            )
        inner, (frm, params) = other.select(c, by_patient=True)
        text, more = such_that(row, inner).sql(c)
        return Raw(
            f"EXISTS (SELECT 1 {frm} AND {inner.c('patient')} = {row.c('patient')} AND ({text}))",
            (*params, *more),
        )

    return Lazy(build)


def exists_for(row: Row, facts: Facts, where: Callable[[Row], Cond]) -> Cond:
    """Inside a `where`: the row's patient has one of `facts` satisfying `where`
    (`exists [Condition: X] C where ...` nested in another query)."""
    return _related(row, facts, lambda _row, other: where(other))


def retrieve(kind: str, *refs: ValueSetRef | Code, resource_types: tuple[str, ...] = ()) -> Facts:
    """[Kind: "value set"] — with no refs, every fact of the kind."""
    return Facts(kind=kind, refs=refs, resource_types=resource_types, any_code=not refs)


def exists(facts: Facts) -> Cond:
    """The patient has at least one of these facts."""

    def build(c: Ctx) -> Cond:
        row, (frm, params) = facts.select(c, by_patient=c.correlated)
        if c.correlated:
            return Raw(f"EXISTS (SELECT 1 {frm} AND {row.c('patient')} = {P}.id)", tuple(params))
        within = c.only_within(row.c("patient"))
        return c.patient_set(f"SELECT {row.c('patient')} AS pid {frm}{within}", params)

    return Lazy(build)


# --- patient ----------------------------------------------------------------------------


def _birth_bounds(ctx: Ctx, at: Instant, low: int, high: int | None) -> list[Any]:
    """AgeInYearsAt(date from at) in [low, high] as bounds on the birth date."""
    day = at(ctx).date()
    latest_birth = _shift_date(day, -low)
    bounds = [ctx.date(latest_birth)]
    if high is not None:
        bounds.insert(0, ctx.date(_shift_date(day, -(high + 1))))
    return bounds


def _shift_date(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def count_at_least(facts: Facts, n: int) -> Cond:
    """Count(facts) >= n, counting resources (a resource's several codes count once)."""

    def build(c: Ctx) -> Cond:
        row, (frm, params) = facts.select(c, by_patient=c.correlated)
        resource = f"{row.c('source_system')} || '/' || {row.c('source_id')}"
        if c.correlated:
            return Raw(
                f"(SELECT COUNT(DISTINCT {resource}) {frm} AND {row.c('patient')} = {P}.id) >= %s",
                (*params, n),
            )
        within = c.only_within(row.c("patient"))
        return c.patient_set(
            f"SELECT {row.c('patient')} AS pid {frm}{within} GROUP BY {row.c('patient')} "
            f"HAVING COUNT(DISTINCT {resource}) >= %s",
            (*params, n),
        )

    return Lazy(build)


def count_days_at_least(
    n: int, *facts: Facts, point: Callable[[Row], Point] = lambda r: r.start
) -> Cond:
    """At least `n` distinct days among these facts (the union of their days): CQL's
    "from V1, V2, V3 where V2 1 day or more after V1 and V3 ... after V2"."""

    def build(c: Ctx) -> Cond:
        selects: list[str] = []
        params: list[Any] = []
        for one in facts:
            row, (frm, more) = one.select(c, by_patient=c.correlated)
            patient = row.c("patient")
            scope = f" AND {patient} = {P}.id" if c.correlated else c.only_within(patient)
            selects.append(
                f"SELECT {row.c('patient')} AS pid, {c.day(point(row).expr)} AS d {frm}{scope}"
            )
            params.extend(more)
        union = " UNION ".join(selects)
        if c.correlated:
            return Raw(f"(SELECT COUNT(DISTINCT u.d) FROM ({union}) u) >= %s", (*params, n))  # noqa: S608
        return c.patient_set(
            f"SELECT u.pid FROM ({union}) u GROUP BY u.pid "  # noqa: S608
            f"HAVING COUNT(DISTINCT u.d) >= %s",
            (*params, n),
        )

    return Lazy(build)


def age_between(low: int, high: int | None, *, at: Instant = _mp_end) -> Cond:
    """AgeInYearsAt(date from `at`) in Interval[low, high] (high None: >= low)."""
    born = f"{P}.{pcol('birth_date')}"
    if high is None:
        return Raw(f"{born} <= %s", lambda c: _birth_bounds(c, at, low, None))
    return Raw(f"{born} > %s AND {born} <= %s", lambda c: _birth_bounds(c, at, low, high))


def sex_is(sex: str) -> Cond:
    return Raw(f"{P}.{pcol('sex')} = %s", (sex,))


__all__ = [
    "FALSE",
    "MP",
    "TRUE",
    "Code",
    "Cond",
    "Facts",
    "Row",
    "Span",
    "ValueSetRef",
    "age_between",
    "all_of",
    "any_of",
    "date_in_start_year",
    "exists",
    "months_after_start",
    "retrieve",
    "sex_is",
    "valueset",
    "years_before_start",
]
