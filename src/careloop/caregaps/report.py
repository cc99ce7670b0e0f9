"""FHIR R4 MeasureReports from a measure run: `summary` (population counts, strata,
score) and `individual` (one patient's memberships, with the rolling status).

An individual report's subject is careloop's Patient; `subject.identifier` carries the
id the source system gave the patient (from the import's SourceRecord), so a payer or
an auditor can match it to their own records.

`report_run` chooses the run a report reads: the measure's current run (its latest
whole-population run, which imports keep up to date) when it is of exactly the asked
period, else a new evaluation. `population_reports` streams one individual report per
patient the evaluator considers (every patient not merged into another), in or out of
the initial population, in batches, so a million patients never sit in memory.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Final

from django.db.models import Count, F, Q

from careloop.caregaps.evaluate import Period, measure_evaluate
from careloop.caregaps.measure import POPULATIONS, Measure, measure_get
from careloop.caregaps.models import MeasureRun, PatientMeasureResult
from careloop.core.practice import practice_today
from careloop.patients.models import Patient

POPULATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-population"
SOURCE_ID_SYSTEM: Final = "urn:careloop:source"
GAP_STATUS_EXTENSION: Final = "urn:careloop:fhir:extension:gap-status"
# Patients per query when streaming individual reports (well under SQLite's variable
# limit; two queries a batch).
BATCH: Final = 500


class PatientNotFound(LookupError):
    """No patient, or more than one, answers to the id given (never echoes the id)."""


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


def _source_identifiers(patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Per patient, the id its first source gave it, as a FHIR Identifier."""
    from careloop.ehr.models import SourceRecord

    records = (
        SourceRecord.objects.filter(patient_id__in=patient_ids, resource_type="Patient")
        .select_related("source")
        .order_by("-created_at", "-pk")
    )
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for record in records:  # the earliest record wins: written last
        assert record.patient_id is not None  # noqa: S101 - filtered on it
        found[record.patient_id] = {
            "system": f"{SOURCE_ID_SYSTEM}:{record.source.name}",
            "value": record.resource_id,
        }
    return found


def individual_reports(
    run: MeasureRun, patient_ids: Sequence[uuid.UUID]
) -> Iterator[dict[str, Any]]:
    """One individual report per patient, in the order given, in two queries."""
    measure = measure_get(run.measure)
    rows: dict[uuid.UUID, dict[int, PatientMeasureResult]] = {}
    for row in PatientMeasureResult.objects.filter(run=run, patient_id__in=patient_ids):
        rows.setdefault(row.patient_id, {})[row.group] = row
    identifiers = _source_identifiers(patient_ids)
    for patient_id in patient_ids:
        yield _individual(run, measure, patient_id, rows.get(patient_id, {}), identifiers)


def individual_report(run: MeasureRun, patient_id: uuid.UUID) -> dict[str, Any]:
    """One patient's memberships (all zero when outside the initial population)."""
    return next(individual_reports(run, [patient_id]))


def population_reports(run: MeasureRun) -> Iterator[dict[str, Any]]:
    """An individual report for every patient the evaluator considers (not merged into
    another), by id: those outside the initial population get all-zero counts, so the
    file accounts for everyone. Streams in batches of `BATCH` patients."""
    ids = (
        Patient.objects.filter(merged_into__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
        .iterator(chunk_size=BATCH * 4)
    )
    batch: list[uuid.UUID] = []
    for patient_id in ids:
        batch.append(patient_id)
        if len(batch) == BATCH:
            yield from individual_reports(run, batch)
            batch = []
    if batch:
        yield from individual_reports(run, batch)


def _individual(
    run: MeasureRun,
    measure: Measure,
    patient_id: uuid.UUID,
    rows: dict[int, PatientMeasureResult],
    identifiers: dict[uuid.UUID, dict[str, Any]],
) -> dict[str, Any]:
    report = _envelope(run, measure, "individual")
    subject: dict[str, Any] = {"reference": f"Patient/{patient_id}"}
    if patient_id in identifiers:
        subject["identifier"] = identifiers[patient_id]
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


def report_period(start: datetime.date, end: datetime.date) -> Period:
    """The measurement period of a report; ValueError when it ends before it starts."""
    if end < start:
        raise ValueError("the period ends before it starts")
    return Period(start, end)


def report_run(
    *,
    measure: Measure,
    period: Period,
    patient_id: uuid.UUID | None = None,
    actor: Any = None,
) -> MeasureRun:
    """The run a report of `measure` over `period` reads.

    The measure's current run (its latest finished whole-population run: the one an
    import's refresh keeps up to date) when it covers exactly `period`; otherwise a new
    evaluation: of `patient_id` alone when one is named (milliseconds), else of the
    whole population. A new run's statuses are as of the practice's today, or of the period's
    end when that is past.
    """
    current = (
        MeasureRun.objects.filter(
            measure=measure.id, whole_population=True, finished_at__isnull=False
        )
        .order_by("-started_at", "-pk")
        .first()
    )
    if (
        current is not None
        and current.period_start == period.start
        and current.period_end == period.end
    ):
        return current
    return measure_evaluate(
        measure=measure,
        period=period,
        patient_ids=None if patient_id is None else [patient_id],
        as_of=min(practice_today(), period.end),
        actor=actor,
    )


def report_patient(key: str) -> uuid.UUID:
    """careloop's id of the patient `key` names: careloop's Patient UUID, or the id a
    source system gave the patient (its FHIR Patient id, `SourceRecord.resource_id`),
    optionally as `SOURCE/ID` to say which source. A merged record answers with the
    record it was merged into. Raises `PatientNotFound` for no patient or several."""
    from careloop.ehr.models import SourceRecord

    key = key.strip()
    try:
        as_uuid: uuid.UUID | None = uuid.UUID(key)
    except ValueError:
        as_uuid = None
    candidates: set[uuid.UUID] = set()
    if as_uuid is not None and Patient.objects.filter(pk=as_uuid).exists():
        candidates.add(as_uuid)
    records = SourceRecord.objects.filter(
        resource_type="Patient", resource_id=key, patient__isnull=False
    )
    source, _, source_id = key.partition("/")
    if source and source_id:
        records = records | SourceRecord.objects.filter(
            resource_type="Patient",
            source__name=source,
            resource_id=source_id,
            patient__isnull=False,
        )
    candidates.update(pid for pid in records.values_list("patient_id", flat=True) if pid)
    survivors = {_survivor(pid) for pid in candidates}
    if not survivors:
        raise PatientNotFound("no patient has that id (careloop's or a source system's)")
    if len(survivors) > 1:
        raise PatientNotFound(
            f"{len(survivors)} patients answer to that id; give careloop's patient id or SOURCE/ID"
        )
    return survivors.pop()


def _survivor(patient_id: uuid.UUID) -> uuid.UUID:
    """The record that lives on after merges (a short chain; guarded against loops)."""
    for _ in range(10):
        merged = (
            Patient.objects.filter(pk=patient_id).values_list("merged_into_id", flat=True).first()
        )
        if merged is None:
            return patient_id
        patient_id = merged
    return patient_id
