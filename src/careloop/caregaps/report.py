"""FHIR R4 MeasureReports from a measure run: `summary` (population counts, strata,
score) and `individual` (one patient's memberships, with the rolling status).

An individual report's subject is careloop's Patient; `subject.identifier` carries the
id the source system gave the patient (from the import's SourceRecord), so a payer or
an auditor can match it to their own records.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Final

from django.db.models import Count, F, Q

from careloop.caregaps.measure import POPULATIONS, Measure, measure_get
from careloop.caregaps.models import MeasureRun, PatientMeasureResult

POPULATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-population"
SOURCE_ID_SYSTEM: Final = "urn:careloop:source"
GAP_STATUS_EXTENSION: Final = "urn:careloop:fhir:extension:gap-status"


def _code(name: str) -> dict[str, Any]:
    return {"coding": [{"system": POPULATION_SYSTEM, "code": name.replace("_", "-")}]}


def _envelope(run: MeasureRun, measure: Measure, kind: str) -> dict[str, Any]:
    version = f"|{measure.version}" if measure.version else ""
    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": kind,
        "measure": f"{measure.url}{version}",
        "date": (run.finished_at or run.started_at).isoformat(),
        "period": {"start": run.period_start.isoformat(), "end": run.period_end.isoformat()},
        "improvementNotation": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
                    "code": measure.improvement,
                }
            ]
        },
    }


def _populations(counts: dict[str, int], declared: Sequence[str]) -> list[dict[str, Any]]:
    return [{"code": _code(name), "count": counts.get(name, 0)} for name in declared]


def _score(counts: dict[str, int]) -> dict[str, Any] | None:
    """Proportion: numerator / (denominator - exclusions - exceptions)."""
    eligible = (
        counts.get("denominator", 0)
        - counts.get("denominator_exclusion", 0)
        - counts.get("denominator_exception", 0)
    )
    if eligible <= 0:
        return None
    return {"value": round(counts.get("numerator", 0) / eligible, 4)}


def summary_report(run: MeasureRun) -> dict[str, Any]:
    """Population counts per group, per stratum of each stratifier, and the score."""
    measure = measure_get(run.measure)
    aggregates = {name: Count("id", filter=Q(**{name: True})) for name in POPULATIONS}
    results = PatientMeasureResult.objects.filter(run=run)
    report = _envelope(run, measure, "summary")
    groups = []
    for number, group in enumerate(measure.groups, start=1):
        rows = results.filter(group=number)
        counts = rows.aggregate(**aggregates)
        entry: dict[str, Any] = {
            "id": f"Group_{number}",
            "population": _populations(counts, group.declares),
        }
        score = _score(counts)
        if score is not None:
            entry["measureScore"] = score
        strata = []
        for bit in range(len(group.stratifiers)):
            inside = rows.annotate(bit=F("strata").bitand(1 << bit)).filter(bit__gt=0)
            stratum_counts = inside.aggregate(**aggregates)
            strata.append(
                {
                    "id": f"Stratification_{bit + 1}",
                    "stratum": [
                        {
                            "value": {"text": "true"},
                            "population": _populations(stratum_counts, group.declares),
                        }
                    ],
                }
            )
        if strata:
            entry["stratifier"] = strata
        groups.append(entry)
    report["group"] = groups
    return report


def _source_identifier(patient_id: uuid.UUID) -> dict[str, Any] | None:
    from careloop.ehr.models import SourceRecord

    record = (
        SourceRecord.objects.filter(patient_id=patient_id, resource_type="Patient")
        .select_related("source")
        .order_by("created_at")
        .first()
    )
    if record is None:
        return None
    return {"system": f"{SOURCE_ID_SYSTEM}:{record.source.name}", "value": record.resource_id}


def individual_report(run: MeasureRun, patient_id: uuid.UUID) -> dict[str, Any]:
    """One patient's memberships (all zero when outside the initial population)."""
    measure = measure_get(run.measure)
    rows = {r.group: r for r in PatientMeasureResult.objects.filter(run=run, patient=patient_id)}
    report = _envelope(run, measure, "individual")
    subject: dict[str, Any] = {"reference": f"Patient/{patient_id}"}
    identifier = _source_identifier(patient_id)
    if identifier is not None:
        subject["identifier"] = identifier
    report["subject"] = subject
    groups = []
    for number, group in enumerate(measure.groups, start=1):
        row = rows.get(number)
        counts = {name: int(bool(row is not None and getattr(row, name))) for name in POPULATIONS}
        entry: dict[str, Any] = {
            "id": f"Group_{number}",
            "population": _populations(counts, group.declares),
        }
        if row is not None and row.status:
            entry["extension"] = [_status_extension(row)]
        groups.append(entry)
    report["group"] = groups
    return report


def _status_extension(row: PatientMeasureResult) -> dict[str, Any]:
    """The rolling status (met, due soon...), its due date and exclusion reason."""
    parts: list[dict[str, Any]] = [{"url": "status", "valueCode": row.status}]
    if row.due_date is not None:
        parts.append({"url": "dueDate", "valueDate": row.due_date.isoformat()})
    if row.reason:
        parts.append({"url": "reason", "valueCode": row.reason})
    return {"url": GAP_STATUS_EXTENSION, "extension": parts}


def individual_report_of(row: PatientMeasureResult) -> dict[str, Any]:
    """The individual report a result row belongs to, with an id (the FHIR API's)."""
    report = individual_report(row.run, row.patient_id)
    report["id"] = str(row.pk)
    return report
