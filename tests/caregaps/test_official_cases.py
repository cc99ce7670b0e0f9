"""Every official eCQM test case gives its expected populations.

For each measure, the case folders of ../shared/data/ecqm/tests/<ID>/ go through the
real FHIR ingest (careloop.ehr.ingest), the measure is evaluated over the whole
database for the period of the cases, and each patient's memberships — per group, and
per stratum where the measure has stratifiers — are compared with the expected
MeasureReport. A table per measure is printed: passing and failing cases.
"""

from __future__ import annotations

import csv
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.db import transaction

from careloop.caregaps.evaluate import Period, measure_evaluate
from careloop.caregaps.measure import POPULATIONS
from careloop.caregaps.models import PatientMeasureResult
from careloop.caregaps.terminology import read_bundle, valuesets_load
from careloop.ehr.ingest import import_paths
from careloop.ehr.models import SourceRecord

pytestmark = pytest.mark.django_db

# In the order they were made exact.
MEASURES = ["CMS125", "CMS130", "CMS124", "CMS122", "CMS165", "CMS69", "CMS138", "CMS2", "CMS117"]
REPORT_CODES = {name.replace("_", "-"): name for name in POPULATIONS}


@dataclass
class Case:
    patient: str
    description: str
    # (group, stratifier or None, population) -> expected count
    expected: dict[tuple[int, int | None, str], int]


def _description(report: dict[str, Any]) -> str:
    for extension in report.get("extension", []):
        if extension["url"].endswith("cqfm-testCaseDescription"):
            return str(extension.get("valueMarkdown", ""))[:70]
    return ""


def _read_case(folder: Path, rows: list[dict[str, str]]) -> Case:
    expected: dict[tuple[int, int | None, str], int] = {}
    for row in rows:
        for name in POPULATIONS:
            expected[(int(row["group"]), None, name)] = int(row[name] or 0)
    report = orjson.loads(next(folder.glob("MeasureReport-*.json")).read_bytes())
    for number, group in enumerate(report.get("group", []), start=1):
        totals = {_population(p): int(p.get("count", 0)) for p in group.get("population", [])}
        for index, stratifier in enumerate(group.get("stratifier", [])):
            strata = {
                s.get("value", {}).get("text"): {
                    _population(p): int(p.get("count", 0)) for p in s.get("population", [])
                }
                for s in stratifier.get("stratum", [])
            }
            if not _consistent(strata, totals):
                continue
            for name, count in strata.get("true", {}).items():
                expected[(number, index, name)] = count
    return Case(folder.name, _description(report), expected)


def _population(population: dict[str, Any]) -> str:
    return REPORT_CODES[population["code"]["coding"][0]["code"]]


def _consistent(strata: dict[Any, dict[str, int]], totals: dict[str, int]) -> bool:
    """A boolean stratifier splits each population in two. Some published reports
    (CMS130) put other numbers in their strata; those strata cannot be checked."""
    true, false = strata.get("true", {}), strata.get("false", {})
    return all(true.get(n, 0) + false.get(n, 0) == count for n, count in totals.items())


def _cases(folder: Path) -> tuple[Period, list[Case]]:
    with (folder / "expected.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    starts = {row["period_start"] for row in rows}
    assert len(starts) == 1, starts
    start = datetime.date.fromisoformat(starts.pop())
    period = Period(start, start.replace(year=start.year + 1) - datetime.timedelta(days=1))
    by_patient: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_patient.setdefault(row["patient_id"], []).append(row)
    return period, [_read_case(folder / pid, rows) for pid, rows in sorted(by_patient.items())]


def _actual(
    run_id: int, patient_id: Any, keys: list[tuple[int, int | None, str]]
) -> dict[Any, int]:
    results = {
        r.group: r
        for r in PatientMeasureResult.objects.filter(run_id=run_id, patient_id=patient_id)
    }
    actual: dict[Any, int] = {}
    for key in keys:
        group, stratifier, name = key
        result = results.get(group)
        member = bool(result is not None and getattr(result, name))
        if stratifier is not None:
            member = member and bool(result is not None and result.strata & (1 << stratifier))
        actual[key] = int(member)
    return actual


def _table(measure_id: str, cases: list[Case], failures: dict[str, list[str]]) -> str:
    lines = [
        f"\n{measure_id}: {len(cases) - len(failures)}/{len(cases)} cases pass",
        f"  {'population':<24}{'pass':>6}{'fail':>6}{'members':>9}",
    ]
    for name in POPULATIONS:
        bad = sum(1 for diffs in failures.values() if any(name in d for d in diffs))
        members = sum(
            count
            for c in cases
            for (_g, s, n), count in c.expected.items()
            if n == name and s is None
        )
        lines.append(f"  {name:<24}{len(cases) - bad:>6}{bad:>6}{members:>9}")
    lines.extend(
        f"  FAIL {c.patient} {c.description!r}: {failures[c.patient]}"
        for c in cases
        if c.patient in failures
    )
    return "\n".join(lines)


def _evaluate_alone(
    case: Path, measure_id: str, period: Period, keys: list[tuple[int, int | None, str]]
) -> tuple[dict[Any, int], dict[Any, int]]:
    """Import one case and evaluate the measure over the database holding only it, as
    the official harness does; then roll back. (Cases reuse resource ids and patient
    demographics, so together they would overwrite and match each other.)

    Evaluated twice: over the population (set-based, what `evaluate` runs) and for the
    patient alone (correlated, what an import's refresh and the profile page run).
    The two compile to different SQL; both must give the official answer."""
    with transaction.atomic():
        import_paths([case], source_name="ecqm")
        patient_id = SourceRecord.objects.get(resource_type="Patient").patient_id
        run = measure_evaluate(measure=measure_id, period=period)
        population = _actual(run.pk, patient_id, keys)
        run = measure_evaluate(measure=measure_id, period=period, patient_ids=[patient_id])
        alone = _actual(run.pk, patient_id, keys)
        transaction.set_rollback(True)
    return population, alone


@pytest.mark.parametrize("measure_id", MEASURES)
def test_official_cases_give_the_expected_populations(
    measure_id: str, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shared_data / "ecqm" / "tests" / measure_id
    period, cases = _cases(folder)
    valuesets_load(expansions=read_bundle())
    failures: dict[str, list[str]] = {}
    for case in cases:
        keys = sorted(case.expected, key=str)
        population, alone = _evaluate_alone(folder / case.patient, measure_id, period, keys)
        diffs = [
            f"g{g}{'' if s is None else f's{s + 1}'} {name} expected {case.expected[(g, s, name)]}"
            f"{'' if how == 'population' else ' (patient alone)'}"
            for how, actual in (("population", population), ("alone", alone))
            for (g, s, name) in keys
            if actual[(g, s, name)] != case.expected[(g, s, name)]
        ]
        if diffs:
            failures[case.patient] = diffs
    with capsys.disabled():
        print(_table(measure_id, cases, failures))
    assert not failures, f"{len(failures)} of {len(cases)} {measure_id} cases differ"
