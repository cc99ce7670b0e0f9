"""MeasureReport: one patient's individual report of a measure run (careloop.caregaps).

A report is addressed by its group-1 result row, which every patient in the run's
initial population has; patients outside it have no report here (the summary and
`--each` reports come from careloop.caregaps.report).
"""

from __future__ import annotations

from typing import Any

from careloop.caregaps.models import PatientMeasureResult
from careloop.caregaps.report import individual_report_of
from careloop.fhirapi.registry import Readable, register
from careloop.security.permissions import Resource


def measure_report_resource(row: PatientMeasureResult, readable: Readable) -> dict[str, Any]:
    return individual_report_of(row)


def _pk(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


PROVIDER = register(
    type="MeasureReport",
    resource=Resource.CLINICAL,
    rows=lambda: PatientMeasureResult.objects.filter(group=1).select_related("run"),
    serialize=measure_report_resource,
    params=[],
    patient_column="patient_id",
    to_pk=_pk,
    exportable=False,
)
