"""Small FHIR resources for ingest tests, in the shapes real EHR exports use."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


def patient(
    pid: str, *, family: str = "Okafor", given: str = "Ada", mrn: str = ""
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1961-04-12",
    }
    if mrn:
        resource["identifier"] = [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:test:mrn",
                "value": mrn,
            }
        ]
    return resource


def observation(
    oid: str,
    pid: str,
    *,
    code: str = "4548-4",
    value: float = 7.1,
    when: str = "2026-03-01T10:00:00+00:00",
    updated: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code, "display": "Hemoglobin A1c"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": "%",
            "system": "http://unitsofmeasure.org",
            "code": "%",
        },
    }
    meta: dict[str, str] = {}
    if updated:
        meta["lastUpdated"] = updated
    if version:
        meta["versionId"] = version
    if meta:
        resource["meta"] = meta
    return resource


def blood_pressure(oid: str, pid: str, systolic: float, diastolic: float) -> dict[str, Any]:
    def component(code: str, value: float) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {"value": value, "unit": "mm[Hg]", "code": "mm[Hg]"},
        }

    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2026-05-02T09:30:00-04:00",
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }


def condition(cid: str, pid: str, code: str = "44054006") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": "2019-02-01",
    }


def write_ndjson(path: Path, resources: list[dict[str, Any]] | list[bytes]) -> Path:
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in resources]
    data = b"\n".join(lines) + b"\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def bundle(kind: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = []
    for r in resources:
        entry: dict[str, Any] = {"fullUrl": f"urn:uuid:{r.get('id', 'nested')}", "resource": r}
        if kind in {"transaction", "batch"}:
            entry["request"] = {"method": "PUT", "url": f"{r['resourceType']}/{r.get('id', '')}"}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}
