"""Write the demo practice as a FHIR Bulk Data export: one NDJSON file per resource type
and a `manifest.json`, streaming patient by patient.

The manifest's `transactionTime` is the run's as-of date, not the wall clock, so the
same seed gives byte-identical files; its `url`s are file names relative to the
manifest, because the export is a directory, not a server.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import orjson

from careloop.demo import fhir
from careloop.demo.people import payer_names
from careloop.demo.records import PatientRec, Practice

RESOURCE_TYPES = (
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
)
BUFFER_BYTES = 1 << 20


class NdjsonSink:
    """One open file per resource type, with a count of the lines written to each."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.counts = dict.fromkeys(RESOURCE_TYPES, 0)
        self._files: dict[str, IO[bytes]] = {}
        for resource_type in RESOURCE_TYPES:
            self._files[resource_type] = (out / f"{resource_type}.ndjson").open(
                "wb", buffering=BUFFER_BYTES
            )

    def write(self, resource_type: str, resource: dict[str, Any]) -> None:
        self._files[resource_type].write(orjson.dumps(resource) + b"\n")
        self.counts[resource_type] += 1

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


def write_practice(sink: NdjsonSink, practice: Practice) -> None:
    sink.write("Organization", fhir.organization(practice))
    for name in payer_names():
        sink.write("Organization", fhir.payer_organization(name))
    for loc in practice.locations:
        sink.write("Location", fhir.location(loc, practice))
    for provider in practice.providers:
        sink.write("Practitioner", fhir.practitioner(provider))


def write_patient(sink: NdjsonSink, rec: PatientRec, *, practice: Practice) -> None:
    sink.write("Patient", fhir.patient(rec, practice_id=practice.organization_id))
    for coverage in fhir.coverages(rec):
        sink.write("Coverage", coverage)
    for appointment in fhir.appointments(rec):
        sink.write("Appointment", appointment)
    for resource_type, resource in fhir.facts(rec):
        sink.write(resource_type, resource)
    for request in fhir.service_requests(rec):
        sink.write("ServiceRequest", request)


def manifest(*, counts: dict[str, int], as_of: datetime.date, request: str) -> dict[str, Any]:
    return {
        "transactionTime": f"{as_of.isoformat()}T00:00:00Z",
        "request": request,
        "requiresAccessToken": False,
        "output": [{"type": t, "url": f"{t}.ndjson", "count": counts[t]} for t in RESOURCE_TYPES],
        "error": [],
    }


def write_ndjson(
    *,
    out: Path,
    practice: Practice,
    patients: Iterable[PatientRec],
    as_of: datetime.date,
    request: str,
    on_patient: Callable[[], None] = lambda: None,
) -> dict[str, int]:
    """Write the export into `out` (which must exist); return resources per type."""
    sink = NdjsonSink(out)
    try:
        write_practice(sink, practice)
        for rec in patients:
            write_patient(sink, rec, practice=practice)
            on_patient()
    finally:
        sink.close()
    document = manifest(counts=sink.counts, as_of=as_of, request=request)
    (out / "manifest.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return sink.counts
