"""`careloop import fhir`: every packaging, idempotent, nothing lost, nothing silent."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from careloop.caregaps.evaluate import Period, measure_evaluate
from careloop.caregaps.models import PatientMeasureResult
from careloop.clinical.models import ClinicalFact
from careloop.ehr.ingest import import_paths, reprocess_quarantine
from careloop.ehr.models import (
    ImportRun,
    MatchReview,
    QuarantineItem,
    QuarantineStatus,
    SourceRecord,
)
from careloop.patients.models import Patient
from tests.ehr import fhir_builders as fb

pytestmark = pytest.mark.django_db


def _rows() -> tuple[int, int, int]:
    return ClinicalFact.objects.count(), SourceRecord.objects.count(), Patient.objects.count()


def _counts(run: ImportRun, key: str) -> dict[str, int]:
    return {t: c[key] for t, c in run.counts.items() if c[key]}


def test_a_bulk_export_imports_completely_and_a_second_import_writes_nothing(
    shared_data: Path,
) -> None:
    export = shared_data / "synthea100"
    manifest = orjson.loads((export / "manifest.json").read_bytes())
    expected: dict[str, int] = {}
    for output in manifest["output"]:
        expected[output["type"]] = expected.get(output["type"], 0) + output["count"]

    first = import_paths([export])

    assert _counts(first, "read") == expected
    assert _counts(first, "quarantined") == {}
    assert Patient.objects.count() == expected["Patient"]
    # Every clinical fact found its patient, whatever order the files came in.
    assert not ClinicalFact.objects.filter(patient__isnull=True).exists()
    assert (
        ClinicalFact.objects.filter(resource_type="Observation", part=0).count()
        == expected["Observation"]
    )
    before = _rows()

    second = import_paths([export])

    assert _counts(second, "created") == {}
    assert _counts(second, "updated") == {}
    assert sum(_counts(second, "unchanged").values()) == sum(_counts(first, "created").values())
    assert _rows() == before


def test_every_official_ecqm_test_patient_imports(shared_data: Path) -> None:
    tests = shared_data / "ecqm" / "tests"
    patient_ids = {
        case.name
        for measure in tests.iterdir()
        if measure.is_dir()
        for case in measure.iterdir()
        if case.is_dir()
    }

    run = import_paths([tests], source_name="ecqm")

    assert _counts(run, "quarantined") == {}, list(
        QuarantineItem.objects.values_list("origin", "reason")
    )
    imported = set(
        SourceRecord.objects.filter(resource_type="Patient").values_list("resource_id", flat=True)
    )
    assert imported == patient_ids
    assert not ClinicalFact.objects.filter(patient__isnull=True).exists()
    # MeasureReports are the expected answers, not data: counted and skipped.
    assert run.counts["MeasureReport"]["skipped"] == run.counts["MeasureReport"]["read"] > 0


def test_bad_lines_go_to_the_quarantine_with_file_line_and_a_reason_and_the_rest_carries_on(
    tmp_path: Path,
) -> None:
    secret_name = "Zebulon-Canary"
    good = fb.observation("obs-good", "p1")
    lines: list[bytes] = [
        orjson.dumps(good),
        b'{"resourceType": "Observation", "id": "broken", ',  # 2: not JSON
        b"[1, 2, 3]",  # 3: not an object
        orjson.dumps({"id": "x", "note": secret_name}),  # 4: no resourceType
        orjson.dumps(fb.condition("c1", "p1")),  # 5: wrong type for the file
        orjson.dumps({**fb.observation("o", "p1"), "id": "has space"}),  # 6: bad id
        orjson.dumps({**fb.observation("o7", "p1"), "effectiveDateTime": "last tuesday"}),
        orjson.dumps({**fb.observation("o8", "p1"), "subject": {"display": secret_name}}),
        orjson.dumps(fb.observation("obs-good-2", "p1")),
    ]
    fb.write_ndjson(tmp_path / "Observation.ndjson", lines)

    run = import_paths([tmp_path / "Observation.ndjson"])

    items = list(QuarantineItem.objects.order_by("line"))
    assert [i.line for i in items] == [2, 3, 4, 5, 6, 7, 8]
    reasons = [i.reason for i in items]
    assert reasons[0] == "not JSON"
    assert "a Condition in a file of Observation" in reasons
    assert any("id" in r for r in reasons)
    assert any("effectiveDateTime" in r for r in reasons)
    assert any("subject" in r for r in reasons)
    assert all(secret_name not in r for r in reasons)
    assert all(i.origin == "Observation.ndjson" for i in items)
    # The raw line is kept (encrypted) so that it can be re-processed after a fix.
    assert secret_name in items[2].payload
    assert set(ClinicalFact.objects.values_list("source_id", flat=True)) == {
        "obs-good",
        "obs-good-2",
    }
    assert run.status == "quarantined"


def test_the_command_prints_a_summary_and_exits_non_zero_when_anything_was_quarantined(
    tmp_path: Path,
) -> None:
    fb.write_ndjson(
        tmp_path / "Observation.ndjson", [orjson.dumps(fb.observation("o1", "p1")), b"not json"]
    )
    out = io.StringIO()

    with pytest.raises(CommandError, match="1 item\\(s\\) quarantined") as failed:
        call_command("import", "fhir", str(tmp_path), stdout=out)

    assert failed.value.returncode == 1
    table = out.getvalue()
    assert "quarantined" in table
    assert "Observation" in table
    result = subprocess.run(
        [sys.executable, "-m", "careloop", "import", "fhir", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_newer_version_replaces_the_older_and_an_older_one_is_ignored(tmp_path: Path) -> None:
    v1 = fb.observation("o1", "p1", value=7.0, updated="2026-03-01T00:00:00Z", version="1")
    v2 = fb.observation("o1", "p1", value=9.5, updated="2026-04-01T00:00:00Z", version="2")
    fb.write_ndjson(tmp_path / "a" / "Observation.ndjson", [v1]) if (
        tmp_path / "a"
    ).mkdir() is None else None
    (tmp_path / "b").mkdir()
    fb.write_ndjson(tmp_path / "b" / "Observation.ndjson", [v2])

    import_paths([tmp_path / "a"])
    newer = import_paths([tmp_path / "b"])
    older = import_paths([tmp_path / "a"])

    assert newer.counts["Observation"]["updated"] == 1
    assert older.counts["Observation"]["older"] == 1
    fact = ClinicalFact.objects.get(source_id="o1")
    assert (fact.value_num, fact.source_version) == (9.5, "2")


def test_facts_that_arrive_before_their_patient_find_it_when_it_comes(tmp_path: Path) -> None:
    (tmp_path / "obs").mkdir()
    (tmp_path / "pat").mkdir()
    fb.write_ndjson(tmp_path / "obs" / "Observation.ndjson", [fb.observation("o1", "p-late")])
    fb.write_ndjson(tmp_path / "pat" / "Patient.ndjson", [fb.patient("p-late")])

    import_paths([tmp_path / "obs"])
    assert ClinicalFact.objects.get(source_id="o1").patient is None
    import_paths([tmp_path / "pat"])

    patient = SourceRecord.objects.get(resource_type="Patient", resource_id="p-late").patient
    assert patient is not None
    assert ClinicalFact.objects.get(source_id="o1").patient == patient


def test_bundles_of_every_kind_and_nested_bundles_are_read(tmp_path: Path) -> None:
    inner = fb.bundle("collection", [fb.condition("c-inner", "pb")])
    outer = fb.bundle("transaction", [fb.patient("pb"), fb.observation("o-b", "pb"), inner])
    (tmp_path / "transaction.json").write_bytes(orjson.dumps(outer))
    searchset = fb.bundle("searchset", [fb.condition("c-search", "pb")])
    (tmp_path / "searchset.json").write_bytes(orjson.dumps(searchset))
    (tmp_path / "single.json").write_bytes(orjson.dumps(fb.observation("o-single", "pb")))

    import_paths([tmp_path])

    patient = SourceRecord.objects.get(resource_type="Patient", resource_id="pb").patient
    assert set(
        ClinicalFact.objects.filter(patient=patient).values_list("source_id", flat=True)
    ) == {"o-b", "c-inner", "c-search", "o-single"}


def test_gzipped_ndjson_and_an_export_manifest_are_read(tmp_path: Path) -> None:
    fb.write_ndjson(tmp_path / "1.Observation.ndjson.gz", [fb.observation("gz1", "p1")])
    (tmp_path / "manifest.json").write_bytes(
        orjson.dumps(
            {
                "transactionTime": "2026-11-01T00:00:00Z",
                "request": "https://ehr.example/fhir/$export",
                "requiresAccessToken": True,
                "output": [
                    {
                        "type": "Observation",
                        "url": "https://ehr.example/f/1.Observation.ndjson.gz",
                        "count": 1,
                    }
                ],
                "error": [],
            }
        )
    )

    run = import_paths([tmp_path])

    assert run.counts["Observation"]["created"] == 1


def test_a_manifest_naming_a_missing_file_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "manifest.json").write_bytes(
        orjson.dumps({"output": [{"type": "Patient", "url": "https://x/Patient.ndjson"}]})
    )

    with pytest.raises(CommandError, match="lists Patient.ndjson, which is not in the folder"):
        call_command("import", "fhir", str(tmp_path))
    assert not ImportRun.objects.exists()


def test_blood_pressure_components_are_kept_as_parts_with_their_values(tmp_path: Path) -> None:
    fb.write_ndjson(tmp_path / "Observation.ndjson", [fb.blood_pressure("bp1", "p1", 142, 91)])

    import_paths([tmp_path])

    rows = ClinicalFact.objects.filter(source_id="bp1").order_by("part")
    assert [(r.element, r.code, r.value_num) for r in rows] == [
        ("code", "85354-9", None),
        ("component", "8480-6", 142.0),
        ("component", "8462-4", 91.0),
    ]


def test_unknown_resource_types_are_counted_and_skipped(tmp_path: Path) -> None:
    fb.write_ndjson(
        tmp_path / "mixed.ndjson",
        [{"resourceType": "Claim", "id": "cl1"}, {"resourceType": "Basic", "id": "b1"}],
    )

    run = import_paths([tmp_path])

    assert run.counts["Claim"]["skipped"] == 1
    assert run.counts["Basic"]["skipped"] == 1
    assert run.status == "done"


def test_a_quarantined_item_is_reprocessed_after_the_fix(tmp_path: Path) -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "Medication/med1"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-02-01",
    }
    (tmp_path / "one").mkdir()
    fb.write_ndjson(tmp_path / "one" / "MedicationRequest.ndjson", [request])
    import_paths([tmp_path / "one"])
    item = QuarantineItem.objects.get()
    assert "Medication" in item.reason

    # The fix: the Medication arrives; the request is then re-processed from the queue.
    medication = {
        "resourceType": "Medication",
        "id": "med1",
        "code": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}]
        },
    }
    (tmp_path / "two").mkdir()
    fb.write_ndjson(tmp_path / "two" / "Medication.ndjson", [medication])
    import_paths([tmp_path / "two"])
    reprocess_quarantine(item_ids=[item.id])

    item.refresh_from_db()
    assert item.status == QuarantineStatus.REPROCESSED
    assert ClinicalFact.objects.get(source_id="mr1").code == "860975"


def test_patients_in_bulk_are_still_matched_one_by_one_when_they_could_be_someone(
    tmp_path: Path,
) -> None:
    phone = [{"system": "phone", "value": "(303) 555-0142", "use": "mobile"}]
    (tmp_path / "clinic").mkdir()
    fb.write_ndjson(
        tmp_path / "clinic" / "Patient.ndjson",
        [{**fb.patient("a1", family="Okafor", given="Ada"), "telecom": phone}],
    )
    import_paths([tmp_path / "clinic"], source_name="clinic")
    (tmp_path / "hospital").mkdir()
    fb.write_ndjson(
        tmp_path / "hospital" / "Patient.ndjson",
        [
            # The same person as a1 (name, birth date and phone agree): no new record.
            {**fb.patient("h1", family="Okafor", given="Ada"), "telecom": phone},
            # Two records of one newcomer in one batch: the second is looked at closely.
            fb.patient("h2", family="Brandt", given="Mila"),
            fb.patient("h3", family="Brandt", given="Mila"),
            # Nobody careloop knows.
            fb.patient("h4", family="Sato", given="Ren"),
        ],
    )

    run = import_paths([tmp_path / "hospital"], source_name="hospital")

    assert run.counts["Patient"]["created"] == 4
    records = dict(
        SourceRecord.objects.filter(resource_type="Patient").values_list("resource_id", "patient")
    )
    assert records["h1"] == records["a1"]
    assert len({records["h2"], records["h3"], records["h4"], records["a1"]}) == 4
    review = MatchReview.objects.get()
    assert {review.incoming_id, review.candidate_id} == {records["h2"], records["h3"]}
    assert "Brandt" not in review.reason


def test_an_import_re_evaluates_the_care_gaps_of_the_patients_it_touched(
    shared_data: Path,
) -> None:
    case = shared_data / "ecqm" / "tests" / "CMS125" / "01c88972-84e2-4594-835b-924481b9990a"
    run = measure_evaluate(measure="CMS125", period=Period.year(2026))
    assert not PatientMeasureResult.objects.filter(run=run).exists()

    import_paths([case], source_name="ehr")

    patient = SourceRecord.objects.get(resource_type="Patient", resource_id=case.name).patient
    result = PatientMeasureResult.objects.get(run=run, patient=patient)
    # The official expectation for this case: in the denominator, excluded.
    assert (result.initial_population, result.denominator, result.denominator_exclusion) == (
        True,
        True,
        True,
    )
