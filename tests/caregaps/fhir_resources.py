"""FHIR resources for the practice-gap and lifecycle tests, imported through the real
ingest (one folder of JSON files per import, as an EHR export would deliver them)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

from careloop.ehr.ingest import import_paths
from careloop.ehr.models import SourceRecord

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
CVX = "http://hl7.org/fhir/sid/cvx"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
VSAC_HCPCS = "http://www.nlm.nih.gov/research/umls/hcpcs"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

OFFICE_VISIT = (SNOMED, "185463005")
HOSPICE_ENCOUNTER = (SNOMED, "183919006")
DIABETES = (SNOMED, "44054006")
MAMMOGRAM = (LOINC, "24606-6")


def coding(code: tuple[str, str]) -> dict[str, str]:
    return {"system": code[0], "code": code[1]}


def patient(
    pid: str, born: str = "1970-05-01", sex: str = "female", *, family: str = "Test"
) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": [pid.title()]}],
        "gender": sex,
        "birthDate": born,
    }


def encounter(
    pid: str, rid: str, day: str, code: tuple[str, str] = OFFICE_VISIT, status: str = "finished"
) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": rid,
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [coding(code)]}],
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T09:30:00Z"},
    }


def condition(pid: str, rid: str, code: tuple[str, str], onset: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": [coding(code)]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": f"{onset}T00:00:00Z",
    }


def observation(
    pid: str,
    rid: str,
    day: str,
    code: tuple[str, str],
    category: str = "laboratory",
    status: str = "final",
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
        "code": {"coding": [coding(code)]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"{day}T10:00:00Z",
    }


def mammogram(pid: str, rid: str, day: str) -> dict[str, Any]:
    return observation(pid, rid, day, MAMMOGRAM, category="imaging")


def procedure(pid: str, rid: str, day: str, code: tuple[str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": rid,
        "status": "completed",
        "code": {"coding": [coding(code)]},
        "subject": {"reference": f"Patient/{pid}"},
        "performedDateTime": f"{day}T11:00:00Z",
    }


def immunization(
    pid: str, rid: str, day: str, cvx: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "resourceType": "Immunization",
        "id": rid,
        "status": status,
        "vaccineCode": {"coding": [{"system": CVX, "code": cvx}]},
        "patient": {"reference": f"Patient/{pid}"},
        "occurrenceDateTime": f"{day}T14:00:00Z",
    }


def import_resources(folder: Path, resources: list[dict[str, Any]]) -> None:
    """Write the resources as files and import them (the import refreshes the care
    gaps of the patients it touched)."""
    folder.mkdir(parents=True, exist_ok=True)
    for resource in resources:
        name = f"{resource['resourceType']}-{resource['id']}.json"
        (folder / name).write_bytes(orjson.dumps(resource))
    import_paths([folder], source_name="ehr")


def patient_ids() -> dict[str, uuid.UUID]:
    """careloop's patient id by the source's Patient id."""
    return {
        r.resource_id: r.patient_id
        for r in SourceRecord.objects.filter(resource_type="Patient")
        if r.patient_id is not None
    }
