"""Patient, from careloop's profile (US Core Patient: identifier, name, gender required)."""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from django.db.models import Q

from careloop.fhirapi.params import SearchParam, blind_param, date_param, token_param
from careloop.fhirapi.registry import Readable, instant, register
from careloop.patients.models import ContactPoint, Patient, PatientIdentifier
from careloop.security.permissions import Resource

US_CORE_PATIENT: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
IDENTIFIER_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
CARELOOP_PATIENT: Final = "urn:careloop:patient"
_GENDERS: Final = {
    "female": ["female"],
    "male": ["male"],
    "other": ["other"],
    "unknown": ["unknown"],
}


def _identifiers(patient: Patient) -> list[dict[str, Any]]:
    # careloop's own id comes first, so every Patient has the identifier US Core requires.
    found: list[dict[str, Any]] = [{"system": CARELOOP_PATIENT, "value": str(patient.pk)}]
    for identifier in patient.identifiers.all():
        entry: dict[str, Any] = {"system": identifier.system, "value": identifier.value}
        if identifier.kind == "mrn":
            entry["type"] = {"coding": [{"system": IDENTIFIER_TYPE, "code": "MR"}]}
        found.append(entry)
    return found


def _names(patient: Patient) -> list[dict[str, Any]]:
    names: list[dict[str, Any]] = [
        {"use": "official", "family": patient.family_name, "given": patient.given_name.split()}
    ]
    if patient.preferred_name:
        names.append({"use": "usual", "given": [patient.preferred_name]})
    return names


def _telecom(patient: Patient) -> list[dict[str, Any]]:
    return [
        {"system": point.system, "value": point.value, "use": point.use, "rank": point.rank}
        for point in patient.contact_points.all()
    ]


def _address(patient: Patient) -> list[dict[str, Any]]:
    address: dict[str, Any] = {}
    if patient.address_line:
        address["line"] = [patient.address_line]
    if patient.city:
        address["city"] = patient.city
    if patient.state:
        address["state"] = patient.state
    if patient.postal_code:
        address["postalCode"] = patient.postal_code
    return [address] if address else []


def patient_resource(patient: Patient, readable: Readable) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": {"lastUpdated": instant(patient.updated_at), "profile": [US_CORE_PATIENT]},
        "identifier": _identifiers(patient),
        "active": patient.merged_into_id is None,
        "name": _names(patient),
        "gender": patient.sex,
        "birthDate": patient.birth_date.isoformat(),
        "communication": [
            {
                "language": {
                    "coding": [{"system": "urn:ietf:bcp:47", "code": patient.preferred_language}]
                }
            }
        ],
    }
    if Resource.CONTACT in readable and (telecom := _telecom(patient)):
        resource["telecom"] = telecom
    if address := _address(patient):
        resource["address"] = address
    if patient.deceased_on is not None:
        resource["deceasedDateTime"] = patient.deceased_on.isoformat()
    if patient.merged_into_id is not None:
        resource["link"] = [
            {"other": {"reference": f"Patient/{patient.merged_into_id}"}, "type": "replaced-by"}
        ]
    return resource


def _through(param: SearchParam, model: type[Any]) -> SearchParam:
    """The parameter matched on a related table, as `id IN (subquery)`: no duplicates."""

    def apply_one(value: Any) -> Q:
        return Q(
            pk__in=model.objects.filter(param.apply_one(value)).order_by().values("patient_id")
        )

    return dataclasses.replace(param, apply_one=apply_one)


def _rows() -> Any:
    return Patient.objects.prefetch_related("identifiers", "contact_points")


PROVIDER = register(
    type="Patient",
    resource=Resource.DEMOGRAPHICS,
    rows=_rows,
    serialize=patient_resource,
    params=[
        _through(
            blind_param(
                "identifier", ["value_bidx"], "identifier", system_column="system", type="token"
            ),
            PatientIdentifier,
        ),
        blind_param("name", ["given_name_bidx", "family_name_bidx"], "name"),
        blind_param("family", ["family_name_bidx"], "name"),
        blind_param("given", ["given_name_bidx"], "name"),
        _through(blind_param("telecom", ["value_bidx"], "contact", type="token"), ContactPoint),
        date_param("birthdate", "birth_date", date_only=True, phi=True),
        token_param("gender", "sex", mapping=_GENDERS),
    ],
    patient_column="id",
    updated_column="updated_at",
    profile=US_CORE_PATIENT,
)
