"""Coverage, from the patient's insurance (US Core Coverage where it applies)."""

from __future__ import annotations

from typing import Any, Final

from careloop.fhirapi.params import token_param
from careloop.fhirapi.registry import Readable, register
from careloop.patients.models import Coverage
from careloop.security.permissions import Resource

US_CORE_COVERAGE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-coverage"
RELATIONSHIP: Final = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
PAYER_CATEGORY: Final = "urn:careloop:payer-category"


def coverage_resource(coverage: Coverage, readable: Readable) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": str(coverage.pk),
        "status": coverage.status,
        "type": {"coding": [{"system": PAYER_CATEGORY, "code": coverage.payer_category}]},
        "beneficiary": {"reference": f"Patient/{coverage.patient_id}"},
        "relationship": {
            "coding": [{"system": RELATIONSHIP, "code": coverage.subscriber_relationship}]
        },
        "payor": [{"display": coverage.payer_name}],
        "order": coverage.rank,
    }
    if coverage.member_id:
        resource["subscriberId"] = coverage.member_id
    period = {}
    if coverage.period_start:
        period["start"] = coverage.period_start.isoformat()
    if coverage.period_end:
        period["end"] = coverage.period_end.isoformat()
    if period:
        resource["period"] = period
    if coverage.plan_name:
        resource["class"] = [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                            "code": "plan",
                        }
                    ]
                },
                "value": coverage.plan_name,
            }
        ]
    return resource


PROVIDER = register(
    type="Coverage",
    resource=Resource.COVERAGE,
    rows=lambda: Coverage.objects.all(),
    serialize=coverage_resource,
    params=[token_param("status", "status")],
    patient_column="patient_id",
    profile=US_CORE_COVERAGE,
)
