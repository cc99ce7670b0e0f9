"""`Measure/[id]/$evaluate-measure` (GET or POST): a MeasureReport of one measure.

Parameters: `periodStart`, `periodEnd` (required; `2026` or `2026-03` mean the whole
year or month), `reportType` and `subject` (`Patient/<careloop id>`). `reportType` is
`subject` (R4's name) or `individual` (R5's) for one patient's report, `population`
(R4) or `summary` (R5) for the population counts, strata and score; without it, a
subject means individual and no subject summary. `subject-list` is not served (a list
of every patient of every population is a bulk export, not an answer).

The report reads the measure's current run when it is of exactly that period, else
evaluates (careloop.caregaps.report.report_run): the patient alone for an individual
report, the population for a summary. A summary is figures (`aggregates` read, like
the home page's); an individual report is clinical (`clinical` read). Scopes: `Measure`
and `MeasureReport`. Each answer is one `fhir.read` audit event (with the patient for
an individual report).
"""

from __future__ import annotations

from typing import Final

from django.http import HttpResponse

from careloop.caregaps.evaluate import Period
from careloop.caregaps.report import individual_report, report_run, summary_report
from careloop.fhirapi.auth import Caller
from careloop.fhirapi.measure import MEASURE_RESOURCE, MEASURE_TYPE, measure_or_404
from careloop.fhirapi.operation_params import (
    operation_inputs,
    patient_reference,
    period_dates,
)
from careloop.fhirapi.outcome import bad_request, fhir_response, not_found
from careloop.fhirapi.scopes import READ
from careloop.patients.models import Patient
from careloop.security.permissions import Resource

ACCEPTED: Final = frozenset({"periodStart", "periodEnd", "reportType", "subject"})
_INDIVIDUAL: Final = frozenset({"subject", "individual"})
_SUMMARY: Final = frozenset({"population", "summary"})


def evaluate_measure(caller: Caller, measure_id: str) -> HttpResponse:
    caller.require_type(MEASURE_TYPE, MEASURE_RESOURCE, READ)
    caller.require_type("MeasureReport", MEASURE_RESOURCE, READ)
    measure = measure_or_404(measure_id)
    inputs = operation_inputs(caller.request, accepted=ACCEPTED)
    start, end = period_dates(inputs)
    subject = inputs.one("subject")
    report_type = inputs.one("reportType") or ("subject" if subject else "population")
    if report_type == "subject-list":
        raise bad_request("reportType subject-list is not supported; use subject or population")
    if report_type not in _INDIVIDUAL | _SUMMARY:
        raise bad_request("reportType must be subject, individual, population or summary")
    period = Period(start, end)
    if report_type in _SUMMARY:
        if subject is not None:
            raise bad_request("a population report takes no subject")
        run = report_run(measure=measure, period=period)
        caller.audit(
            "fhir.read",
            resource_type="MeasureReport",
            resource_id=str(run.pk),
            fields=(f"$evaluate-measure:{measure.id}", "reportType=summary"),
        )
        return fhir_response(summary_report(run))
    if subject is None:
        raise bad_request("an individual report needs subject=Patient/<id>")
    patient_id = patient_reference(subject, "subject")
    caller.require_type("MeasureReport", Resource.CLINICAL, READ, patient_id=patient_id)
    if not Patient.objects.filter(pk=patient_id, merged_into__isnull=True).exists():
        raise not_found()
    run = report_run(measure=measure, period=period, patient_id=patient_id)
    caller.audit(
        "fhir.read",
        resource_type="MeasureReport",
        resource_id=str(run.pk),
        patient_id=patient_id,
        fields=(f"$evaluate-measure:{measure.id}", "reportType=individual"),
    )
    return fhir_response(individual_report(run, patient_id))
