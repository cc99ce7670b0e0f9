"""Rolling status as of a date: met (until when), due soon, overdue, excluded (why),
and the incremental refresh an import triggers."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from careloop.caregaps.evaluate import Period, caregaps_refresh, measure_evaluate
from careloop.caregaps.models import MeasureRun, PatientMeasureResult
from careloop.ehr.ingest import import_paths
from careloop.ehr.models import SourceRecord

pytestmark = pytest.mark.django_db

AS_OF = datetime.date(2026, 12, 1)
OFFICE_VISIT = {"system": "http://snomed.info/sct", "code": "185463005"}
HOSPICE_ENCOUNTER = {"system": "http://snomed.info/sct", "code": "183919006"}
MAMMOGRAM = {"system": "http://loinc.org", "code": "24606-6"}
IMAGING = "http://terminology.hl7.org/CodeSystem/observation-category"


def _patient(pid: str, sex: str = "female") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": "Test", "given": [pid.title()]}],
        "gender": sex,
        "birthDate": "1970-05-01",
    }


def _encounter(pid: str, rid: str, day: str, coding: dict[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": rid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [coding]}],
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T09:30:00Z"},
    }


def _mammogram(pid: str, rid: str, day: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [{"coding": [{"system": IMAGING, "code": "imaging"}]}],
        "code": {"coding": [MAMMOGRAM]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"{day}T10:00:00Z",
    }


def _write(folder: Path, resources: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for resource in resources:
        name = f"{resource['resourceType']}-{resource['id']}.json"
        (folder / name).write_bytes(orjson.dumps(resource))
    return folder


def _import(folder: Path) -> None:
    import_paths([folder], source_name="ehr")


def _ids() -> dict[str, Any]:
    return {
        r.resource_id: r.patient_id for r in SourceRecord.objects.filter(resource_type="Patient")
    }


def _status(run: MeasureRun, patient_id: Any) -> tuple[str, datetime.date | None, str]:
    row = PatientMeasureResult.objects.get(run=run, patient_id=patient_id, group=1)
    return row.status, row.due_date, row.reason


@pytest.fixture
def practice(tmp_path: Path) -> dict[str, Any]:
    visit = "2026-03-10"
    _import(
        _write(
            tmp_path / "first",
            [
                _patient("met"),
                _encounter("met", "e1", visit, OFFICE_VISIT),
                _mammogram("met", "m1", "2025-04-02"),
                _patient("soon"),
                _encounter("soon", "e2", visit, OFFICE_VISIT),
                _mammogram("soon", "m2", "2024-10-20"),
                _patient("never"),
                _encounter("never", "e3", visit, OFFICE_VISIT),
                _patient("hospice"),
                _encounter("hospice", "e4", visit, OFFICE_VISIT),
                _encounter("hospice", "e5", "2026-06-01", HOSPICE_ENCOUNTER),
                _patient("man", "male"),
                _encounter("man", "e6", visit, OFFICE_VISIT),
            ],
        )
    )
    return _ids()


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
    _import(_write(tmp_path / "second", [_mammogram("never", "m3", "2026-11-20")]))

    refreshed = caregaps_refresh(patient_ids=[practice["never"]])

    assert refreshed == 1
    assert _status(run, practice["never"]) == ("met", datetime.date(2029, 2, 20), "")
    assert PatientMeasureResult.objects.get(run=run, patient_id=practice["soon"]).pk == untouched
    assert PatientMeasureResult.objects.filter(run=run).count() == 4


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
