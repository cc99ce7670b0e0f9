"""`careloop demo --format ndjson`: a FHIR R4 Bulk Data export, deterministic for a seed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from tests.demo.conftest import export, read_ndjson

RESOURCE_TYPES = {
    "Patient",
    "Practitioner",
    "Organization",
    "Location",
    "Coverage",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "Immunization",
    "MedicationRequest",
    "Appointment",
    "ServiceRequest",
}


def digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(tmp_path_factory.mktemp("nd"), patients=60, seed=7)


def test_same_seed_gives_byte_identical_files(small_export: Path, tmp_path: Path) -> None:
    again = export(tmp_path / "again", patients=60, seed=7)
    assert digest(again) == digest(small_export)


def test_different_seed_gives_a_different_practice(small_export: Path, tmp_path: Path) -> None:
    other = export(tmp_path / "other", patients=60, seed=8)
    assert digest(other)["Patient.ndjson"] != digest(small_export)["Patient.ndjson"]


def test_a_patient_does_not_depend_on_how_many_come_after(
    small_export: Path, tmp_path: Path
) -> None:
    fewer = export(tmp_path / "fewer", patients=25, seed=7)
    for name in ("Patient.ndjson", "Observation.ndjson", "Appointment.ndjson"):
        head = (fewer / name).read_bytes()
        assert (small_export / name).read_bytes().startswith(head)


def test_manifest_lists_every_file_with_its_line_count(small_export: Path) -> None:
    manifest = orjson.loads((small_export / "manifest.json").read_bytes())
    assert manifest["requiresAccessToken"] is False
    assert manifest["transactionTime"] == "2026-11-01T00:00:00Z"
    assert {entry["type"] for entry in manifest["output"]} == RESOURCE_TYPES
    for entry in manifest["output"]:
        lines = (small_export / entry["url"]).read_bytes().count(b"\n")
        assert lines == entry["count"], entry["type"]
    assert manifest["output"][0] == {"type": "Patient", "url": "Patient.ndjson", "count": 60}


def test_every_line_is_a_resource_of_its_file_type_with_a_unique_id(small_export: Path) -> None:
    seen: set[str] = set()
    for resource_type in RESOURCE_TYPES:
        for resource in read_ndjson(small_export / f"{resource_type}.ndjson"):
            assert resource["resourceType"] == resource_type
            key = f"{resource_type}/{resource['id']}"
            assert key not in seen
            seen.add(key)
            assert None not in resource.values()


def _references(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        for value in node.values():
            found += _references(value)
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


def test_every_reference_resolves_within_the_export(small_export: Path) -> None:
    ids = {
        f"{t}/{r['id']}" for t in RESOURCE_TYPES for r in read_ndjson(small_export / f"{t}.ndjson")
    }
    dangling = [
        ref
        for t in RESOURCE_TYPES
        for resource in read_ndjson(small_export / f"{t}.ndjson")
        for ref in _references(resource)
        if ref not in ids
    ]
    assert dangling == []


def test_patients_are_us_core_shaped(small_export: Path) -> None:
    for patient in read_ndjson(small_export / "Patient.ndjson"):
        assert patient["identifier"][0]["type"]["coding"][0]["code"] == "MR"
        assert patient["name"][0]["family"] and patient["name"][0]["given"]
        assert patient["gender"] in {"female", "male", "other", "unknown"}
        assert len(patient["birthDate"]) == 10
        assert patient["address"][0]["state"]
        assert patient["communication"][0]["language"]["coding"][0]["system"] == "urn:ietf:bcp:47"
        assert patient["telecom"]


def test_blood_pressure_is_one_panel_with_two_components(small_export: Path) -> None:
    panels = [
        o
        for o in read_ndjson(small_export / "Observation.ndjson")
        if o["code"]["coding"][0]["code"] == "85354-9"
    ]
    assert panels
    for panel in panels:
        assert panel["category"][0]["coding"][0]["code"] == "vital-signs"
        codes = [c["code"]["coding"][0]["code"] for c in panel["component"]]
        assert codes == ["8480-6", "8462-4"]
        systolic, diastolic = (c["valueQuantity"]["value"] for c in panel["component"])
        assert systolic > diastolic
        assert panel["component"][0]["valueQuantity"]["unit"] == "mm[Hg]"


def test_observation_categories_are_the_fhir_ones(small_export: Path) -> None:
    categories = {
        o["category"][0]["coding"][0]["code"]
        for o in read_ndjson(small_export / "Observation.ndjson")
    }
    assert categories <= {"vital-signs", "laboratory", "survey", "social-history", "imaging"}
    assert {"vital-signs", "laboratory"} <= categories


def test_conditions_carry_snomed_and_icd10(small_export: Path) -> None:
    for condition in read_ndjson(small_export / "Condition.ndjson"):
        systems = [c["system"] for c in condition["code"]["coding"]]
        assert systems == ["http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"]
