"""Observation, from the EHR-sourced clinical facts of kind `observation`.

Reads only the fact's coded columns (kind, system, code, display, status, category,
effective time, value, unit, patient). Facts not yet matched to a patient are left out.
"""

from __future__ import annotations

from typing import Any, Final

from careloop.clinical.models import ClinicalFact, FactKind
from careloop.fhirapi.params import date_param, token_param
from careloop.fhirapi.registry import Readable, instant, int_or_none, register
from careloop.security.permissions import Resource

CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM: Final = "http://unitsofmeasure.org"
_STATUSES: Final = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
COLUMNS: Final = (
    "id",
    "patient_id",
    "kind",
    "system",
    "code",
    "display",
    "status",
    "category",
    "effective_start",
    "effective_end",
    "value_num",
    "value_code",
    "unit",
)


def _value(fact: ClinicalFact) -> dict[str, Any]:
    if fact.value_num is not None:
        quantity: dict[str, Any] = {"value": fact.value_num}
        if fact.unit:
            quantity.update(unit=fact.unit, system=UCUM, code=fact.unit)
        return {"valueQuantity": quantity}
    if fact.value_code:
        return {"valueCodeableConcept": {"coding": [{"code": fact.value_code}]}}
    return {}


def observation_resource(fact: ClinicalFact, readable: Readable) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": fact.system, "code": fact.code}
    if fact.display:
        coding["display"] = fact.display
    status = (
        fact.status if fact.status in _STATUSES else ("final" if not fact.status else "unknown")
    )
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(fact.pk),
        "status": status,
        "code": {"coding": [coding]},
        "subject": {"reference": f"Patient/{fact.patient_id}"},
    }
    if fact.category:
        resource["category"] = [{"coding": [{"system": CATEGORY, "code": fact.category}]}]
    if fact.effective_start is not None and fact.effective_end is not None:
        resource["effectivePeriod"] = {
            "start": instant(fact.effective_start),
            "end": instant(fact.effective_end),
        }
    elif fact.effective_start is not None:
        resource["effectiveDateTime"] = instant(fact.effective_start)
    return {**resource, **_value(fact)}


def _rows() -> Any:
    return ClinicalFact.objects.filter(kind=FactKind.OBSERVATION, patient__isnull=False).only(
        *COLUMNS
    )


PROVIDER = register(
    type="Observation",
    resource=Resource.CLINICAL,
    rows=_rows,
    serialize=observation_resource,
    params=[
        token_param("code", "code", system_column="system"),
        token_param("category", "category", system=CATEGORY),
        date_param("date", "effective_start"),
        token_param("status", "status"),
    ],
    patient_column="patient_id",
    to_pk=int_or_none,
)
