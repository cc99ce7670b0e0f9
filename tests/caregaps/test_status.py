"""Rolling status as of a date: met (until when), due soon, overdue, excluded (why),
and the incremental refresh an import triggers."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from careloop.caregaps.evaluate import Period, caregaps_refresh, measure_evaluate
from careloop.caregaps.models import MeasureRun, PatientMeasureResult
from tests.caregaps.fhir_resources import OFFICE_VISIT, encounter, import_resources, mammogram
from tests.caregaps.gaps_practice import AS_OF, import_practice

pytestmark = pytest.mark.django_db


def _status(run: MeasureRun, patient_id: Any) -> tuple[str, datetime.date | None, str]:
    row = PatientMeasureResult.objects.get(run=run, patient_id=patient_id, group=1)
    return row.status, row.due_date, row.reason


@pytest.fixture
def practice(tmp_path: Path) -> dict[str, Any]:
    """The practice of `gaps_practice` (met, soon, never, hospice, man)."""
    return import_practice(tmp_path / "first")


def test_statuses_say_met_until_due_soon_overdue_and_why_excluded(practice: dict[str, Any]) -> None:
    run = measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF)

    # A mammogram closes CMS125 for 27 months (the lookback from October two years
    # before the period).
    assert _status(run, practice["met"]) == ("met", datetime.date(2027, 7, 2), "")
    # Met until 2027-01-20: within the default 60-day horizon of 2026-12-01.
    assert _status(run, practice["soon"]) == ("due_soon", datetime.date(2027, 1, 20), "")
    assert _status(run, practice["never"]) == ("overdue", None, "")
    assert _status(run, practice["hospice"]) == ("excluded", None, "hospice")
    assert not PatientMeasureResult.objects.filter(run=run, patient_id=practice["man"]).exists()


def test_a_shorter_horizon_keeps_the_patient_met(practice: dict[str, Any]) -> None:
    run = measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF, horizon_days=30)

    assert _status(run, practice["soon"])[0] == "met"


def test_refresh_re_evaluates_only_the_touched_patients(
    practice: dict[str, Any], tmp_path: Path
) -> None:
    run = measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF)
    untouched = PatientMeasureResult.objects.get(run=run, patient_id=practice["soon"]).pk
    import_resources(tmp_path / "second", [mammogram("never", "m3", "2026-11-20")])

    refreshed = caregaps_refresh(patient_ids=[practice["never"]])

    assert refreshed == 1
    assert _status(run, practice["never"]) == ("met", datetime.date(2029, 2, 20), "")
    assert PatientMeasureResult.objects.get(run=run, patient_id=practice["soon"]).pk == untouched
    assert PatientMeasureResult.objects.filter(run=run).count() == 4


def test_refresh_of_a_patient_with_many_matching_facts_writes_one_row(
    practice: dict[str, Any], tmp_path: Path
) -> None:
    """Several facts satisfy each criterion (three office visits and two mammograms):
    the patient is still one row, on both engines. SQLite 3.51 turns a correlated
    EXISTS into a join and returned the patient once per matching visit."""
    run = measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF)
    import_resources(
        tmp_path / "second",
        [
            encounter("never", "e7", "2026-04-10", OFFICE_VISIT),
            encounter("never", "e8", "2026-05-10", OFFICE_VISIT),
            mammogram("never", "m4", "2026-05-10"),
            mammogram("never", "m5", "2026-06-10"),
        ],
    )

    assert caregaps_refresh(patient_ids=[practice["never"]]) == 1

    assert PatientMeasureResult.objects.filter(run=run, patient_id=practice["never"]).count() == 1
    assert _status(run, practice["never"]) == ("met", datetime.date(2028, 9, 10), "")


def test_refresh_without_a_current_run_does_nothing(practice: dict[str, Any]) -> None:
    assert caregaps_refresh(patient_ids=[practice["never"]]) == 0
    assert caregaps_refresh(patient_ids=[]) == 0


def test_reports_are_valid_fhir_r4_measure_reports(practice: dict[str, Any]) -> None:
    from fhir.resources.R4B.measurereport import MeasureReport

    from careloop.caregaps.report import individual_report, summary_report

    run = measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF)

    summary = summary_report(run)
    individual = individual_report(run, practice["soon"])

    MeasureReport.model_validate(summary)
    MeasureReport.model_validate(individual)
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in summary["group"][0]["population"]}
    assert counts == {
        "initial-population": 4,
        "denominator": 4,
        "denominator-exclusion": 1,
        "numerator": 2,
    }
    assert summary["group"][0]["measureScore"]["value"] == round(2 / 3, 4)
    assert individual["subject"]["reference"] == f"Patient/{practice['soon']}"
    assert individual["subject"]["identifier"] == {
        "system": "urn:careloop:source:ehr",
        "value": "soon",
    }
    status = {e["url"]: e for e in individual["group"][0]["extension"][0]["extension"]}
    assert status["status"]["valueCode"] == "due_soon"
    assert status["dueDate"]["valueDate"] == "2027-01-20"


def test_the_evaluate_command_runs_the_measures_and_audits_each_run(
    practice: dict[str, Any],
) -> None:
    import io

    from django.core.management import call_command

    from careloop.security.models import AuditEvent

    out = io.StringIO()

    call_command(
        "caregaps", "evaluate", "--measure", "CMS125", "--measure", "cms2", "--as-of", "2026-12-01",
        stdout=out,
    )  # fmt: skip

    text = out.getvalue()
    assert "statuses as of 2026-12-01" in text
    assert "CMS125" in text and "CMS2" in text
    runs = MeasureRun.objects.filter(as_of=AS_OF)
    assert sorted(runs.values_list("measure", flat=True)) == ["CMS125", "CMS2"]
    events = AuditEvent.objects.filter(action="caregaps.evaluate")
    assert sorted(events.values_list("resource_id", flat=True)) == sorted(
        str(run.pk) for run in runs
    )
    assert set(events.values_list("actor_id", flat=True)) == {"console"}


def test_the_evaluate_command_refuses_an_unknown_measure(practice: dict[str, Any]) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises((CommandError, SystemExit)):
        call_command("caregaps", "evaluate", "--measure", "CMS999")
    assert not MeasureRun.objects.exists()
