"""`Measure/[id]`: a minimal Measure resource for each measure careloop evaluates, and
the CapabilityStatement entry for Measure and its operations.

The resource says what a MeasureReport refers to: the canonical url (the one
`MeasureReport.measure` names), title, proportion scoring, improvement notation, and
per group the populations (by their CQL definition names) and stratifiers. The logic
itself is careloop's Python (careloop.caregaps.measures), not a Library.

A Measure is a definition, no patient in it: reading it needs the `aggregates`
permission (every role that sees the practice's figures) and the `Measure` scope.
"""

from __future__ import annotations

from typing import Any, Final

from django.http import HttpResponse

from careloop.caregaps.measure import Measure, measure_get
from careloop.fhirapi.auth import Caller
from careloop.fhirapi.outcome import FhirError, fhir_response
from careloop.fhirapi.scopes import READ
from careloop.security.permissions import Resource

MEASURE_TYPE: Final = "Measure"
MEASURE_RESOURCE: Final = Resource.AGGREGATES
EVALUATE_MEASURE_DEFINITION: Final = (
    "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"
)
CARE_GAPS_DEFINITION: Final = "http://hl7.org/fhir/us/davinci-deqm/OperationDefinition/care-gaps"
_CQL_NAMES: Final = {
    "initial_population": "Initial Population",
    "denominator": "Denominator",
    "denominator_exclusion": "Denominator Exclusions",
    "denominator_exception": "Denominator Exceptions",
    "numerator": "Numerator",
    "numerator_exclusion": "Numerator Exclusions",
}
_POPULATION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/measure-population"


def measure_or_404(measure_id: str) -> Measure:
    """The registered measure of that id (CMS125, AWV...); 404 for any other."""
    try:
        return measure_get(measure_id)
    except KeyError:
        raise FhirError(404, "not-found", "careloop has no measure of that id") from None


def measure_by_url(url: str) -> Measure | None:
    from careloop.caregaps.measure import measures

    canonical = url.partition("|")[0]
    return next((m for m in measures().values() if m.url == canonical), None)


def _expression(name: str) -> dict[str, str]:
    return {"language": "text/cql-identifier", "expression": name}


def measure_resource(measure: Measure) -> dict[str, Any]:
    groups = []
    for number, group in enumerate(measure.groups, start=1):
        entry: dict[str, Any] = {
            "id": f"Group_{number}",
            "population": [
                {
                    "code": {
                        "coding": [{"system": _POPULATION_SYSTEM, "code": name.replace("_", "-")}]
                    },
                    "criteria": _expression(_CQL_NAMES[name]),
                }
                for name in group.declares
            ],
        }
        if group.stratifiers:
            entry["stratifier"] = [
                {
                    "id": f"Stratification_{bit}",
                    "code": {"text": _stratifier_name(measure, bit)},
                    "criteria": _expression(f"Stratification {bit}"),
                }
                for bit in range(1, len(group.stratifiers) + 1)
            ]
        groups.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "Measure",
        "id": measure.id,
        "url": measure.url,
        "name": measure.id.replace("-", ""),
        "title": measure.title,
        "status": "active",
        "scoring": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/measure-scoring",
                    "code": "proportion",
                }
            ]
        },
        "improvementNotation": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
                    "code": measure.improvement,
                }
            ]
        },
        "group": groups,
    }
    if measure.version:
        resource["version"] = measure.version
    return resource


def _stratifier_name(measure: Measure, bit: int) -> str:
    names = measure.stratifier_names
    return names[bit - 1] if bit <= len(names) else f"Stratification {bit}"


def measure_read(caller: Caller, measure_id: str) -> HttpResponse:
    caller.require_type(MEASURE_TYPE, MEASURE_RESOURCE, READ)
    measure = measure_or_404(measure_id)
    caller.audit("fhir.read", resource_type=MEASURE_TYPE, resource_id=measure.id)
    return fhir_response(measure_resource(measure))


def measure_capability() -> dict[str, Any]:
    """The CapabilityStatement's Measure entry: read, and the two operations."""
    return {
        "type": MEASURE_TYPE,
        "interaction": [{"code": "read"}],
        "versioning": "no-version",
        "operation": [
            {"name": "evaluate-measure", "definition": EVALUATE_MEASURE_DEFINITION},
            {"name": "care-gaps", "definition": CARE_GAPS_DEFINITION},
        ],
    }
