"""The care-gap measures read believable rates off the demo practice: every measure
(the CMS eCQMs and the practice gaps) has an initial population, and a met rate
strictly between 15% and 95% (for an inverse measure such as CMS122, the share not in
the numerator), so that a change in how the demo codes its facts can never again
silently drop a measure to 0% or 100%."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command
from django.db import connection

from careloop.caregaps.evaluate import Period, measure_evaluate, run_counts
from careloop.caregaps.measure import measures
from tests.demo.conftest import AS_OF

pytestmark = pytest.mark.django_db

LOW, HIGH = 0.15, 0.95


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def test_every_measure_has_a_population_and_a_believable_rate() -> None:
    # SQLite evaluates the correlated criteria of CMS69 and CMS165 slowly (see
    # docs/performance.md): a smaller practice there keeps the test under half a minute.
    patients = 1500 if connection.vendor == "postgresql" else 900
    call_command("demo", patients=patients, seed=1, as_of=AS_OF, stdout=_Null())
    as_of = datetime.date.fromisoformat(AS_OF)
    rates: dict[str, float] = {}
    for measure_id, measure in measures().items():
        run = measure_evaluate(measure=measure, period=Period.year(as_of.year), as_of=as_of)
        for group, counts in run_counts(run).items():
            key = f"{measure_id} group {group}"
            assert counts["initial_population"] > 0, key
            eligible = (
                counts["denominator"]
                - counts["denominator_exclusion"]
                - counts["denominator_exception"]
            )
            assert eligible > 0, key
            rate = counts["numerator"] / eligible
            rates[key] = 1 - rate if measure.improvement == "decrease" else rate
    outside = {key: round(rate, 3) for key, rate in rates.items() if not LOW < rate < HIGH}
    assert outside == {}
    assert {"CMS125 group 1", "CMS69 group 1", "CMS138 group 2", "CMS117 group 1"} <= set(rates)
