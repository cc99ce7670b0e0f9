"""`careloop caregaps report`: summary, individual (by careloop's or the source's id),
one report per patient as NDJSON, to a file atomically, and one line for bad input."""

from __future__ import annotations

import datetime
import io
import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from fhir.resources.R4B.measurereport import MeasureReport

from careloop.caregaps.evaluate import Period, measure_evaluate
from careloop.caregaps.management.commands.caregaps import Command
from careloop.caregaps.models import MeasureRun
from careloop.core import clock
from careloop.patients.models import Patient
from careloop.security.models import AuditEvent
from tests.caregaps.gaps_practice import AS_OF, import_practice

pytestmark = pytest.mark.django_db

PERIOD = ["--period-start", "2026-01-01", "--period-end", "2026-12-31"]


@pytest.fixture(autouse=True)
def _today() -> Iterator[None]:
    with clock.frozen(datetime.datetime.combine(AS_OF, datetime.time(12), tzinfo=datetime.UTC)):
        yield


@pytest.fixture
def practice(tmp_path: Path) -> dict[str, uuid.UUID]:
    return import_practice(tmp_path / "practice")


def report(*args: str) -> str:
    out = io.StringIO()
    call_command("caregaps", "report", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def counts(group: dict[str, Any]) -> dict[str, int]:
    return {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}


def test_summary_counts_the_population_and_scores_it(practice: dict[str, uuid.UUID]) -> None:
    summary = json.loads(report("--measure", "cms125", *PERIOD))

    MeasureReport.model_validate(summary)
    assert summary["type"] == "summary"
    assert summary["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    group = summary["group"][0]
    assert counts(group) == {
        "initial-population": 4,
        "denominator": 4,
        "denominator-exclusion": 1,
        "numerator": 2,
    }
    assert group["measureScore"]["value"] == round(2 / 3, 4)
    # CMS125's two age strata are reported.
    assert len(group["stratifier"]) == 2
    event = AuditEvent.objects.get(action="fhir.export")
    assert (event.actor_kind, event.actor_id, event.patient_id) == ("system", "console", None)
    assert "type=summary" in event.fields


def test_individual_report_by_careloop_id_names_the_source_id(
    practice: dict[str, uuid.UUID],
) -> None:
    patient = practice["soon"]

    individual = json.loads(report("--measure", "CMS125", *PERIOD, "--patient", str(patient)))

    MeasureReport.model_validate(individual)
    assert individual["type"] == "individual"
    assert individual["subject"] == {
        "reference": f"Patient/{patient}",
        "identifier": {"system": "urn:careloop:source:ehr", "value": "soon"},
    }
    group = individual["group"][0]
    assert counts(group)["numerator"] == 1
    status = {e["url"]: e for e in group["extension"][0]["extension"]}
    assert status["status"]["valueCode"] == "due_soon"
    event = AuditEvent.objects.get(action="fhir.export")
    assert event.patient_id == patient and "type=individual" in event.fields


def test_individual_report_by_the_source_systems_patient_id(
    practice: dict[str, uuid.UUID],
) -> None:
    by_source = json.loads(report("--measure", "CMS125", *PERIOD, "--patient", "never"))
    by_source_and_name = json.loads(
        report("--measure", "CMS125", *PERIOD, "--patient", "ehr/never")
    )

    assert by_source["subject"]["reference"] == f"Patient/{practice['never']}"
    assert by_source_and_name["subject"] == by_source["subject"]
    assert counts(by_source["group"][0])["numerator"] == 0


def test_a_patient_outside_the_initial_population_gets_an_all_zero_report(
    practice: dict[str, uuid.UUID],
) -> None:
    individual = json.loads(report("--measure", "CMS125", *PERIOD, "--patient", "man"))

    assert set(counts(individual["group"][0]).values()) == {0}
    assert "extension" not in individual["group"][0]


def test_each_writes_one_valid_report_per_patient_as_ndjson(
    practice: dict[str, uuid.UUID],
) -> None:
    text = report("--measure", "CMS125", *PERIOD, "--each")

    lines = text.splitlines()
    assert len(lines) == Patient.objects.filter(merged_into__isnull=True).count() == 5
    reports = [MeasureReport.model_validate_json(line) for line in lines]
    subjects = {r.subject.reference for r in reports}
    assert subjects == {f"Patient/{pid}" for pid in practice.values()}
    in_population = sum(
        counts(json.loads(line)["group"][0])["initial-population"] for line in lines
    )
    assert in_population == 4
    assert "type=each" in AuditEvent.objects.get(action="fhir.export").fields


def test_a_current_run_of_the_same_period_is_reused_and_another_period_evaluates(
    practice: dict[str, uuid.UUID],
) -> None:
    current = measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF)

    report("--measure", "CMS125", *PERIOD)
    assert MeasureRun.objects.count() == 1
    assert AuditEvent.objects.get(action="fhir.export").resource_id == str(current.pk)

    report("--measure", "CMS125", "--period-start", "2025-01-01", "--period-end", "2025-12-31")
    assert MeasureRun.objects.count() == 2


def test_out_writes_the_file_atomically_and_owner_only(
    practice: dict[str, uuid.UUID], tmp_path: Path
) -> None:
    target = tmp_path / "reports" / "cms125.ndjson"
    target.parent.mkdir()
    target.write_text("an older report\n")

    printed = report("--measure", "CMS125", *PERIOD, "--each", "--out", str(target))

    assert printed == ""
    lines = target.read_text().splitlines()
    assert len(lines) == 5
    for line in lines:
        MeasureReport.model_validate_json(line)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["cms125.ndjson"]  # no temp left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--measure", "CMS125", "--period-start", "2026-13-01", "--period-end", "2026-12-31"],
         "--period-start takes a date as YYYY-MM-DD"),
        (["--measure", "CMS125", "--period-start", "2026-12-31", "--period-end", "2026-01-01"],
         "--period-end: the period ends before it starts"),
        (["--measure", "CMS999", *PERIOD], "unknown measure 'CMS999'"),
        (["--measure", "CMS125", *PERIOD, "--patient", "nobody"], "--patient: no patient"),
        (["--measure", "CMS125", *PERIOD, "--patient", "never", "--each"], "not both"),
        (["--measure", "CMS125"], "the following arguments are required: --period-start"),
        (["--measure", "CMS125", *PERIOD, "--out", "/nonexistent/folder/r.json"],
         "--out: the folder /nonexistent/folder does not exist"),
    ],
)  # fmt: skip
# run_from_argv closes the database connections when it ends, as `careloop` does.
@pytest.mark.django_db(transaction=True)
def test_bad_input_is_one_line_without_a_traceback(
    practice: dict[str, uuid.UUID],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(["careloop", "caregaps", "report", *args])

    assert exited.value.code != 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("careloop caregaps: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not AuditEvent.objects.filter(action="fhir.export").exists()


def test_an_id_two_sources_gave_two_patients_is_ambiguous(
    practice: dict[str, uuid.UUID], tmp_path: Path
) -> None:
    from careloop.ehr.ingest import import_paths

    folder = tmp_path / "other"
    folder.mkdir()
    other = {
        "resourceType": "Patient",
        "id": "never",
        "name": [{"family": "Other", "given": ["Person"]}],
        "gender": "female",
        "birthDate": "1950-01-02",
    }
    (folder / "Patient-never.json").write_text(json.dumps(other))
    import_paths([folder], source_name="clinic-b")

    with pytest.raises(CommandError, match="2 patients answer to that id"):
        report("--measure", "CMS125", *PERIOD, "--patient", "never")
    assert json.loads(report("--measure", "CMS125", *PERIOD, "--patient", "ehr/never"))


def test_the_command_declares_the_clinical_export_the_console_row_allows() -> None:
    from careloop.security.permissions import CONSOLE, Op, Resource, allowed

    assert (Op.EXPORT, Resource.CLINICAL) in Command.permissions
    assert all(allowed(CONSOLE, op, resource) for op, resource in Command.permissions)
