"""The SQL pieces a measure compiles to: conditions, times and the two dialects.

Every value reaches the database as a parameter; the text of a fragment is built only
from identifiers taken from model metadata (table and column names) and from aliases
the compiler makes up. A fragment is compiled against a `Ctx`, which holds the
measurement period (so period-relative times are computed here, in Python, and sent
as parameters) and the database vendor (the few date functions that differ).
"""

from __future__ import annotations

import abc
import datetime
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

DAY = datetime.timedelta(days=1)
Fragment = tuple[str, list[Any]]


@dataclass
class Ctx:
    """What a compilation needs: the measurement period, the vendor, fresh aliases."""

    start: datetime.datetime
    end: datetime.datetime
    vendor: str
    using: str = "default"
    # The value sets a compilation used (evaluation loads them before running).
    valuesets: set[str] = field(default_factory=set)
    # A few patients (an import touched them, a profile page): patient predicates
    # compile to correlated EXISTS, which use the (patient, kind) index, instead of
    # semi-joins over the whole population.
    correlated: bool = False
    # While correlated: every row a criterion reads is a fact of the statement's patient
    # row `p`, which the criterion may name (off while compiling a part of the statement
    # that `p` is not in scope of).
    patient_in_scope: bool = True
    # Over the population: each patient set (`exists`, counts) is computed once into
    # a temporary table, so the final statement joins sets of known size instead of
    # trusting the planner's estimate of a dozen stacked filters (which, on
    # PostgreSQL, turns semi-joins into per-patient rescans). Key: its SQL and params.
    materialize: bool = False
    sets: dict[tuple[str, tuple[Any, ...]], str] = field(default_factory=dict)
    # Each set's name and its select, in the order they were made.
    set_selects: dict[str, Fragment] = field(default_factory=dict)
    # The sets among them that hold fact rows, not patient ids (`fact_table`).
    fact_tables: set[str] = field(default_factory=set)
    # A set holding the initial population: the criteria after it only need facts of
    # its patients (most measures' populations are a small part of the practice).
    within: str | None = None
    # While the group statement compiles: sets are LEFT JOINed to the patient row
    # (`joins`, in order) and a membership is `<set>.pid IS NOT NULL`.
    join_sets: bool = False
    joins: list[str] = field(default_factory=list)

    _aliases: Iterator[int] = field(default_factory=itertools.count)

    def patient_set(self, select_sql: str, params: list[Any] | tuple[Any, ...]) -> Cond:
        """`p.id IN (select_sql)`, the select giving patient ids; materialized once
        per compilation when `materialize` is on."""
        if not self.materialize:
            return Raw(f"p.id IN ({select_sql})", tuple(params))  # noqa: S608
        name = self.set_name(select_sql, params)
        if self.join_sets:
            # In the group statement: a LEFT JOIN per set. PostgreSQL does not hash an
            # IN (subquery) inside a CASE and would rescan the set for every patient.
            if name not in self.joins:
                self.joins.append(name)
            return Raw(f"{name}.pid IS NOT NULL")
        return Raw(f"p.id IN (SELECT pid FROM {name})")  # noqa: S608

    def set_name(self, select_sql: str, params: list[Any] | tuple[Any, ...]) -> str:
        """The temporary table that will hold this select's patients (made up here)."""
        # The same criterion compiled twice differs only in its made-up aliases (an
        # exclusion is compiled for the population and again for its reason).
        key = (_canonical_aliases(select_sql), tuple(hashable_param(p) for p in params))
        name = self.sets.get(key)
        if name is None:
            name = self.sets[key] = f"cg_set_{len(self.sets)}"
            self.set_selects[name] = (select_sql, list(params))
        return name

    def fact_table(self, select_sql: str, params: list[Any] | tuple[Any, ...]) -> str:
        """The temporary table that will hold this select's fact rows (every column
        of the facts table, indexed by patient): the other side of a relationship
        between facts ("a reading during an encounter"), selected from the practice
        once instead of looked up among each patient's facts for every row."""
        key = ("facts:" + _canonical_aliases(select_sql), tuple(hashable_param(p) for p in params))
        name = self.sets.get(key)
        if name is None:
            name = self.sets[key] = f"cg_facts_{len(self.sets)}"
            self.set_selects[name] = (select_sql, list(params))
            self.fact_tables.add(name)
        return name

    def existing_fact_table(
        self, select_sql: str, params: list[Any] | tuple[Any, ...]
    ) -> str | None:
        """The fact table already made for this select, if one was."""
        key = ("facts:" + _canonical_aliases(select_sql), tuple(hashable_param(p) for p in params))
        return self.sets.get(key)

    def only_within(self, patient_sql: str) -> str:
        """` AND <patient column> IN (the initial population)` when one is known."""
        if self.within is None or self.correlated:
            return ""
        # SQLite would otherwise drive the select from the population through the
        # (patient, kind) index, reading every fact of the kind of each patient for
        # each criterion; `+` keeps the index out of it, so the value set's codes
        # lead through the (kind, code) index and the population is a lookup.
        unindexed = "+" if self.vendor == "sqlite" else ""
        return f" AND {unindexed}{patient_sql} IN (SELECT pid FROM {self.within})"  # noqa: S608

    def in_list(self, expr: str, values: list[str]) -> Fragment:
        """`expr` is one of `values`: one array parameter on PostgreSQL, a list of
        parameters on SQLite."""
        if self.vendor == "postgresql":
            return f"{expr} = ANY(%s)", [values]
        return f"{expr} IN ({', '.join(['%s'] * len(values))})", list(values)

    def alias(self, stem: str = "f") -> str:
        return f"{stem}{next(self._aliases)}"

    def dt(self, value: datetime.datetime) -> Any:
        """A datetime parameter in the form the backend stores it (UTC)."""
        return connections[self.using].ops.adapt_datetimefield_value(value)

    def date(self, value: datetime.date) -> Any:
        return connections[self.using].ops.adapt_datefield_value(value)

    # -- the date functions that differ between the engines --------------------------

    def day(self, timestamp_sql: str) -> str:
        """The UTC calendar day of a timestamp column expression."""
        if self.vendor == "postgresql":
            return f"CAST(({timestamp_sql}) AT TIME ZONE 'UTC' AS date)"
        return f"date({timestamp_sql})"

    def add_years(self, date_sql: str) -> str:
        """`date_sql` plus a whole number of years given as the next parameter."""
        if self.vendor == "postgresql":
            return f"CAST(({date_sql}) + make_interval(years => %s) AS date)"
        return f"date({date_sql}, %s || ' years')"

    def add_days(self, date_sql: str) -> str:
        """`date_sql` plus a whole number of days given as the next parameter."""
        if self.vendor == "postgresql":
            return f"CAST(({date_sql}) + make_interval(days => %s) AS date)"
        return f"date({date_sql}, %s || ' days')"

    def add_months(self, date_sql: str) -> str:
        """`date_sql` plus a whole number of months given as the next parameter."""
        if self.vendor == "postgresql":
            return f"CAST(({date_sql}) + make_interval(months => %s) AS date)"
        return f"date({date_sql}, %s || ' months')"

    def int_param(self, value: int) -> Any:
        return value if self.vendor == "postgresql" else f"{value:+d}"


_ALIAS = re.compile(r"\b([fs])(\d+)\b")


def _canonical_aliases(sql: str) -> str:
    """The SQL with the aliases made by `Ctx.alias` renumbered by first appearance."""
    seen: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"{match.group(1)}{len(seen)}")

    return _ALIAS.sub(rename, sql)


def hashable_param(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class Cond(abc.ABC):
    """A boolean SQL condition, combined with `&`, `|` and `~`."""

    @abc.abstractmethod
    def sql(self, ctx: Ctx) -> Fragment: ...

    def __and__(self, other: Cond) -> Cond:
        return Junction("AND", (self, other))

    def __or__(self, other: Cond) -> Cond:
        return Junction("OR", (self, other))

    def __invert__(self) -> Cond:
        return Negation(self)


@dataclass(frozen=True)
class Raw(Cond):
    """SQL text with %s placeholders; `params` may depend on the period."""

    text: str
    params: Callable[[Ctx], list[Any]] | tuple[Any, ...] = ()

    def sql(self, ctx: Ctx) -> Fragment:
        params = self.params(ctx) if callable(self.params) else list(self.params)
        return self.text, params


@dataclass(frozen=True)
class Lazy(Cond):
    """A condition built at compile time, when the period is known."""

    build: Callable[[Ctx], Cond]

    def sql(self, ctx: Ctx) -> Fragment:
        return self.build(ctx).sql(ctx)


@dataclass(frozen=True)
class Junction(Cond):
    op: str
    parts: tuple[Cond, ...]

    def sql(self, ctx: Ctx) -> Fragment:
        texts: list[str] = []
        params: list[Any] = []
        for part in self.parts:
            text, more = part.sql(ctx)
            texts.append(f"({text})")
            params.extend(more)
        return f" {self.op} ".join(texts), params


@dataclass(frozen=True)
class Negation(Cond):
    inner: Cond

    def sql(self, ctx: Ctx) -> Fragment:
        text, params = self.inner.sql(ctx)
        return f"NOT ({text})", params


TRUE = Raw("1 = 1")
FALSE = Raw("1 = 0")


def all_of(*conds: Cond) -> Cond:
    return Junction("AND", conds) if conds else TRUE


def any_of(*conds: Cond) -> Cond:
    return Junction("OR", conds) if conds else FALSE


# --- times --------------------------------------------------------------------------

Instant = Callable[[Ctx], datetime.datetime]


def floor_day(value: datetime.datetime) -> datetime.datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def add_years(value: datetime.datetime, years: int) -> datetime.datetime:
    """Calendar arithmetic as CQL does it: 29 February becomes 28 February."""
    try:
        return value.replace(year=value.year + years)
    except ValueError:
        return value.replace(year=value.year + years, day=28)


def add_months(value: datetime.datetime, months: int) -> datetime.datetime:
    month0 = value.month - 1 + months
    year, month = value.year + month0 // 12, month0 % 12 + 1
    for day in (value.day, 30, 29, 28):
        try:
            return value.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")
