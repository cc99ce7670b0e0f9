"""`Measure/$care-gaps` (GET or POST): the Da Vinci DEQM Gaps in Care operation.

Parameters (DEQM STU5, OperationDefinition care-gaps): `periodStart`, `periodEnd`
(required), `status` (required, repeatable, comma lists too: `open-gap`, `closed-gap`,
`prospective-gap`), `subject` (`Patient/<careloop id>`; without it, every patient with
a gap of a requested status), `measureId` / `measureUrl` (repeatable; without them,
every measure). Other DEQM parameters (`practitioner`, `organization`, `topic`,
`program`, `subjectGroup`...) are refused with 400 rather than ignored.

The answer is a Parameters resource with one `return` Bundle per patient: a `document`
Bundle whose first entry is the gaps-in-care Composition (LOINC 96315-7; one section
per measure with a gap, its focus the patient's individual MeasureReport, its entries
the DetectedIssues), then the MeasureReports, then one DetectedIssue per gap (code
CAREGAP, the DEQM gapStatus modifier extension, evidence: the MeasureReport). A named
subject gets a Bundle even without gaps; without a subject, patients with none are left
out. Entries are `urn:uuid:` resources made for the answer (nothing is stored).

Gap status comes from the rolling status (careloop.caregaps): `overdue` is an open gap,
`met` a closed gap, `due_soon` a prospective gap (met now, due within the horizon);
`excluded` and `not_applicable` are no gap. The statuses are those of the run the
MeasureReport reads (careloop.caregaps.report.report_run), as of its date.

Clinical data (`clinical` read); scopes for every type the answer carries: Measure,
MeasureReport, Composition, DetectedIssue. A named subject is one `fhir.read` event
with the patient; a population answer is one `fhir.export` event recorded before the
first byte, and streams (patients in batches), however many patients it holds.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from django.conf import settings
from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase

from careloop.caregaps.evaluate import Period
from careloop.caregaps.measure import Measure, measures
from careloop.caregaps.models import GapStatus, MeasureRun, PatientMeasureResult
from careloop.caregaps.report import BATCH, individual_reports, report_run
from careloop.core import clock
from careloop.fhirapi.auth import Caller
from careloop.fhirapi.measure import measure_by_url, measure_or_404
from careloop.fhirapi.operation_params import (
    Inputs,
    operation_inputs,
    patient_reference,
    period_dates,
)
from careloop.fhirapi.outcome import FHIR_JSON, FhirError, bad_request, fhir_response, not_found
from careloop.fhirapi.registry import instant
from careloop.fhirapi.scopes import READ
from careloop.patients.models import Patient
from careloop.security.permissions import Resource

ACCEPTED: Final = frozenset(
    {"periodStart", "periodEnd", "status", "subject", "measureId", "measureUrl"}
)
SCOPED_TYPES: Final = ("Measure", "MeasureReport", "Composition", "DetectedIssue")
GAPS_STATUS_SYSTEM: Final = "http://hl7.org/fhir/us/davinci-deqm/CodeSystem/gaps-status"
GAP_STATUS_EXTENSION: Final = (
    "http://hl7.org/fhir/us/davinci-deqm/StructureDefinition/extension-gapStatus"
)
# DEQM gap status -> careloop's rolling status.
GAP_STATUSES: Final = {
    "open-gap": GapStatus.OVERDUE,
    "closed-gap": GapStatus.MET,
    "prospective-gap": GapStatus.DUE_SOON,
}
_DEQM_OF: Final = {status.value: code for code, status in GAP_STATUSES.items()}


@dataclass(frozen=True)
class Request:
    measures: tuple[Measure, ...]
    period: Period
    statuses: frozenset[str]  # careloop statuses
    patient_id: uuid.UUID | None


def care_gaps(caller: Caller) -> HttpResponseBase:
    for resource_type in SCOPED_TYPES:
        caller.require_type(resource_type, Resource.CLINICAL, READ)
    asked = _request(operation_inputs(caller.request, accepted=ACCEPTED))
    if asked.patient_id is not None and not _patient_exists(asked.patient_id):
        raise not_found()
    runs = [
        (measure, report_run(measure=measure, period=asked.period, patient_id=asked.patient_id))
        for measure in asked.measures
    ]
    fields = (
        f"$care-gaps:{','.join(m.id for m in asked.measures)}"[:120],
        "status=" + ",".join(sorted(_DEQM_OF[s] for s in asked.statuses)),
    )
    stamp = instant(clock.now())
    if asked.patient_id is not None:
        caller.audit(
            "fhir.read", resource_type="Bundle", patient_id=asked.patient_id, fields=fields
        )
        bundles = list(_bundles(runs, [asked.patient_id], asked, stamp, keep_empty=True))
        return fhir_response(
            {"resourceType": "Parameters", "parameter": [_return(b) for b in bundles]}
        )
    caller.audit("fhir.export", resource_type="Bundle", fields=fields)
    stream = _stream(_bundles_of_population(runs, asked, stamp))
    return StreamingHttpResponse(stream, content_type=FHIR_JSON)


def _patient_exists(patient_id: uuid.UUID) -> bool:
    return Patient.objects.filter(pk=patient_id, merged_into__isnull=True).exists()


def _request(inputs: Inputs) -> Request:
    start, end = period_dates(inputs)
    codes = [c.strip() for value in inputs.all("status") for c in value.split(",") if c.strip()]
    if not codes:
        raise bad_request("parameter status is required (open-gap, closed-gap, prospective-gap)")
    unknown = [c for c in codes if c not in GAP_STATUSES]
    if unknown:
        raise bad_request("status must be open-gap, closed-gap or prospective-gap")
    chosen: dict[str, Measure] = {}
    for value in inputs.all("measureId"):
        for measure_id in filter(None, (part.strip() for part in value.split(","))):
            measure = measure_or_404(measure_id)
            chosen[measure.id] = measure
    for url in inputs.all("measureUrl"):
        found = measure_by_url(url)
        if found is None:
            raise FhirError(404, "not-found", "careloop has no measure of that url")
        chosen[found.id] = found
    subject = inputs.one("subject")
    return Request(
        measures=tuple(chosen.values()) or tuple(measures().values()),
        period=Period(start, end),
        statuses=frozenset(GAP_STATUSES[c] for c in codes),
        patient_id=patient_reference(subject, "subject") if subject is not None else None,
    )


def _return(bundle: dict[str, Any]) -> dict[str, Any]:
    return {"name": "return", "resource": bundle}


def _stream(bundles: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """The Parameters resource, one Bundle at a time (no empty `parameter` array)."""
    yield b'{"resourceType":"Parameters"'
    first = True
    for bundle in bundles:
        yield (b',"parameter":[' if first else b",") + orjson.dumps(_return(bundle))
        first = False
    yield b"}" if first else b"]}"


def _bundles_of_population(
    runs: Sequence[tuple[Measure, MeasureRun]], asked: Request, stamp: str
) -> Iterator[dict[str, Any]]:
    """Every patient with a gap of a requested status, by id, in batches."""
    patients = (
        PatientMeasureResult.objects.filter(
            run__in=[run for _, run in runs], status__in=asked.statuses
        )
        .order_by("patient_id")
        .values_list("patient_id", flat=True)
        .distinct()
        .iterator(chunk_size=BATCH * 4)
    )
    while batch := list(itertools.islice(patients, BATCH)):
        yield from _bundles(runs, batch, asked, stamp, keep_empty=False)


def _bundles(
    runs: Sequence[tuple[Measure, MeasureRun]],
    patient_ids: list[uuid.UUID],
    asked: Request,
    stamp: str,
    *,
    keep_empty: bool,
) -> Iterator[dict[str, Any]]:
    """One document Bundle per patient, from a few queries per measure for the batch."""
    gaps: dict[tuple[uuid.UUID, int], list[PatientMeasureResult]] = {}
    rows = PatientMeasureResult.objects.filter(
        run__in=[run for _, run in runs], patient_id__in=patient_ids, status__in=asked.statuses
    ).order_by("patient_id", "run_id", "group")
    for row in rows:
        gaps.setdefault((row.patient_id, row.run_id), []).append(row)
    reports: dict[tuple[uuid.UUID, int], dict[str, Any]] = {}
    for _, run in runs:
        with_gaps = [pid for pid in patient_ids if (pid, run.pk) in gaps]
        for pid, report in zip(with_gaps, individual_reports(run, with_gaps), strict=True):
            reports[(pid, run.pk)] = report
    for pid in patient_ids:
        sections = [
            (measure, reports[(pid, run.pk)], gaps[(pid, run.pk)])
            for measure, run in runs
            if (pid, run.pk) in gaps
        ]
        if sections or keep_empty:
            yield _bundle(pid, sections, asked.period, stamp)


def _urn() -> str:
    return str(uuid.uuid4())


def _bundle(
    patient_id: uuid.UUID,
    sections: list[tuple[Measure, dict[str, Any], list[PatientMeasureResult]]],
    period: Period,
    stamp: str,
) -> dict[str, Any]:
    subject = {"reference": f"Patient/{patient_id}"}
    composition_sections: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    issues: list[dict[str, Any]] = []
    for measure, report, rows in sections:
        report = {**report, "id": _urn()}
        reports.append(report)
        measure_issues = [_issue(subject, measure, report["id"], row, period) for row in rows]
        issues.extend(measure_issues)
        composition_sections.append(
            {
                "title": measure.title,
                "focus": {"reference": f"urn:uuid:{report['id']}"},
                "entry": [{"reference": f"urn:uuid:{i['id']}"} for i in measure_issues],
            }
        )
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": _urn(),
        "status": "final",
        "type": {
            "coding": [
                {"system": "http://loinc.org", "code": "96315-7", "display": "Gaps in care report"}
            ]
        },
        "subject": subject,
        "date": stamp,
        "author": [{"display": settings.PRACTICE_NAME}],
        "title": "Gaps in care report",
    }
    if composition_sections:
        composition["section"] = composition_sections
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{_urn()}"},
        "type": "document",
        "timestamp": stamp,
        "entry": [
            {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}
            for resource in (composition, *reports, *issues)
        ],
    }


def _issue(
    subject: dict[str, str],
    measure: Measure,
    report_id: str,
    row: PatientMeasureResult,
    period: Period,
) -> dict[str, Any]:
    code = _DEQM_OF[row.status]
    return {
        "resourceType": "DetectedIssue",
        "id": _urn(),
        "modifierExtension": [
            {
                "url": GAP_STATUS_EXTENSION,
                "valueCodeableConcept": {"coding": [{"system": GAPS_STATUS_SYSTEM, "code": code}]},
            }
        ],
        "status": "final",
        "code": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "CAREGAP",
                    "display": "Care Gaps",
                }
            ]
        },
        "patient": subject,
        "identifiedPeriod": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "detail": f"{measure.id} Group_{row.group}: {code} ({row.status})",
        "evidence": [{"detail": [{"reference": f"urn:uuid:{report_id}"}]}],
    }
