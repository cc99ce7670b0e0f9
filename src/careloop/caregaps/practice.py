"""What the practice-defined gaps share (AWV, DM-EYE, DM-KIDNEY, FLU), in the measure
language: who is in the practice's care, rolling lookbacks from the period's end, the
flu season, and "both tests" closings.

These gaps are not eCQMs: there is no CQL to follow, so each definition says in a
comment what it decides. They run in the same engine, with the same rolling status
and lifecycle, as the CMS measures (docs/caregaps.md, "Practice gaps").
"""

from __future__ import annotations

import datetime

from django.db import connection

from careloop.caregaps.dsl import MP, Code, Facts, P, Point, Row, Span, exists, pcol
from careloop.caregaps.library import encounter, is_encounter_performed
from careloop.caregaps.sql import Cond, Ctx, Instant, Lazy, Raw, add_months

# HCPCS Level II as EHRs send it (HL7's canonical), as the eCQM value sets spell it
# (VSAC), and the older http spelling some feeds still use.
HCPCS_SYSTEMS = (
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "http://www.nlm.nih.gov/research/umls/hcpcs",
)
CVX = "http://hl7.org/fhir/sid/cvx"


def hcpcs(code: str, display: str = "") -> tuple[Code, ...]:
    """One HCPCS code under each spelling of the system."""
    return tuple(Code(code, system, display) for system in HCPCS_SYSTEMS)


def months_before_end(months: int) -> Instant:
    """The period's end minus `months`: the start of a rolling lookback ("in the last
    12 months" as of the end of the period)."""
    return lambda c: add_months(c.end, -months)


def last_months(months: int) -> Span:
    """[the period's end - months, the period's end], by day: a fact on the first day
    keeps the gap met until the period's last day (its day + `months`)."""
    return Span(months_before_end(months), MP.end)


# In the practice's care: alive, not transferred away, and seen (any finished
# encounter) in the period or the year before. A patient who left or was never seen
# is not on the practice's recall lists.
IN_CARE: Cond = (
    Raw(f"{P}.{pcol('deceased_on')} IS NULL")
    & Raw(f"{P}.{pcol('transferred_on')} IS NULL")
    & exists(
        encounter().where(
            is_encounter_performed,
            lambda e: e.period.overlaps_day(Span(lambda c: add_months(c.start, -12), MP.end)),
        )
    )
)


def on_or_after_day_of(mine: Point, other: Point) -> Cond:
    """The day of `mine` is the day of `other` or later (both known)."""
    return Lazy(
        lambda c: Raw(
            f"{mine.expr} IS NOT NULL AND {other.expr} IS NOT NULL "
            f"AND {c.day(mine.expr)} >= {c.day(other.expr)}"
        )
    )


def paired(first: Facts, second: Facts) -> tuple[Facts, Facts]:
    """Closing facts for "both tests" (eGFR and uACR): a test counts when the other
    test was done on its day or later. The latest such fact is the earlier of the two
    latest tests, so the gap stays met until the first of them lapses."""
    return (
        first.with_(second, such_that=lambda a, b: on_or_after_day_of(b.latest, a.latest)),
        second.with_(first, such_that=lambda a, b: on_or_after_day_of(b.latest, a.latest)),
    )


# --- the flu season: August 1 to March 31 ----------------------------------------------

SEASON_START_MONTH = 8


def season_start(ctx: Ctx) -> datetime.datetime:
    """August 1 of the season under way (or last begun) at the period's end."""
    end = ctx.end
    year = end.year if end.month >= SEASON_START_MONTH else end.year - 1
    return datetime.datetime(year, SEASON_START_MONTH, 1, tzinfo=datetime.UTC)


def season_anchor(row: Row) -> Point:
    """July 31 before the season of the row's day: the closing adds 8 months to it, so
    a dose keeps the patient met until March 31, the end of its season. (Closing
    points are plain SQL with no compile context; the vendor is the default
    connection's, which every database of a deployment shares.)"""
    day = row.latest.expr
    if connection.vendor == "postgresql":
        utc = f"(({day}) AT TIME ZONE 'UTC')"
        return Point(
            f"make_timestamptz(CAST(EXTRACT(YEAR FROM {utc}) AS integer) - "
            f"CASE WHEN EXTRACT(MONTH FROM {utc}) < {SEASON_START_MONTH} THEN 1 ELSE 0 END, "
            "7, 31, 0, 0, 0, 'UTC')"
        )
    return Point(
        f"CASE WHEN CAST(substr({day}, 6, 2) AS integer) >= {SEASON_START_MONTH} "
        f"THEN date({day}, 'start of year', '+6 months', '+30 days') "
        f"ELSE date({day}, 'start of year', '-1 years', '+6 months', '+30 days') END"
    )


SEASON_MONTHS_AFTER_ANCHOR = 8  # July 31 + 8 months = March 31
