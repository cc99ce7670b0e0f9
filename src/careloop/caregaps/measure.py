"""What a measure is: groups of population criteria, and the registry of measures.

A measure file (careloop/caregaps/measures/cmsNNN.py) defines one `Measure` named
`MEASURE`; the registry finds it by its CMS short id. The population criteria are
patient predicates (careloop.caregaps.dsl); the proportion rules between them
(denominator only inside the initial population, and so on) are applied by the
evaluator, never by the measure.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from careloop.caregaps.dsl import Facts, Point, Row
from careloop.caregaps.sql import FALSE, Cond

POPULATIONS = (
    "initial_population",
    "denominator",
    "denominator_exclusion",
    "denominator_exception",
    "numerator",
    "numerator_exclusion",
)


def _latest(row: Row) -> Point:
    return row.latest


@dataclass(frozen=True)
class Closing:
    """What closes the measure's gap, and for how long: the day of `point` of one of
    `facts` plus `months` is the day the patient stays met until (a mammogram closes
    CMS125 for 27 months: the lookback from October two years before the period)."""

    facts: Facts
    months: int
    point: Callable[[Row], Point] = _latest


@dataclass(frozen=True)
class Group:
    initial_population: Cond
    numerator: Cond
    # None: the denominator is the initial population ("Denominator": "Initial Population").
    denominator: Cond | None = None
    denominator_exclusion: Cond = FALSE
    denominator_exception: Cond = FALSE
    numerator_exclusion: Cond = FALSE
    # Boolean stratifiers ("Stratification 1", ...), in the Measure resource's order.
    stratifiers: tuple[Cond, ...] = ()
    # Why a patient is excluded, first match wins: (reason code, condition). The
    # rolling status names it ("hospice", "mastectomy"...); "other" when none holds.
    exclusion_reasons: tuple[tuple[str, Cond], ...] = ()
    # Which populations the Measure resource declares (the report lists only those).
    declares: tuple[str, ...] = (
        "initial_population",
        "denominator",
        "denominator_exclusion",
        "numerator",
    )


@dataclass(frozen=True)
class Measure:
    id: str
    title: str
    url: str
    groups: tuple[Group, ...]
    # "increase": a higher score is better; CMS122 is an inverse measure.
    improvement: str = "increase"
    version: str = ""
    stratifier_names: tuple[str, ...] = field(default=())
    # What closes the gap and for how long (the rolling status's "met until"). Without
    # it a patient in the numerator is met until the end of the period.
    closing: tuple[Closing, ...] = ()


@cache
def measures() -> dict[str, Measure]:
    """Every measure in careloop.caregaps.measures, by id (CMS125, ..., AWV, FLU)."""
    from careloop.caregaps import measures as package

    found: dict[str, Measure] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        measure = getattr(module, "MEASURE", None)
        if isinstance(measure, Measure):
            found[measure.id] = measure
    return dict(sorted(found.items(), key=lambda item: _registry_order(item[0])))


def _registry_order(measure_id: str) -> tuple[int, int, str]:
    """CMS measures first, by number (CMS2 before CMS69 before CMS117); then the
    practice-defined gaps (AWV, DM-EYE...) by id."""
    number = measure_id[3:]
    if measure_id.startswith("CMS") and number.isdigit():
        return 0, int(number), ""
    return 1, 0, measure_id


def measure_get(measure_id: str) -> Measure:
    try:
        return measures()[measure_id.upper()]
    except KeyError:
        known = ", ".join(measures())
        raise KeyError(f"unknown measure {measure_id!r} (known: {known})") from None
