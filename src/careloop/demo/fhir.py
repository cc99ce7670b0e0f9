"""The demo records as FHIR R4 resources shaped by US Core, ready for `orjson.dumps`.

Only the writer of the NDJSON export calls this: FHIR stays at the boundary. Ids are
the same UUIDs the database rows get, so an NDJSON export and a database load of the
same seed describe one practice.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

from careloop.demo import vocabulary as v
from careloop.demo.generate import MRN_SYSTEM
from careloop.demo.people import payer_id
from careloop.demo.records import (
    FactRec,
    LocationRec,
    PatientRec,
    Practice,
    ProviderRec,
)

Resource = dict[str, Any]

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ACT_CODE = v.ACT_CODE
CLASS_DISPLAY = {"AMB": "ambulatory", "VR": "virtual", "HH": "home health"}
PAYER_TYPE = "https://nahdo.org/sopt"
SOPT = {
    "medicare": ("1", "MEDICARE"),
    "medicaid": ("2", "MEDICAID"),
    "commercial": ("5", "PRIVATE HEALTH INSURANCE"),
    "self_pay": ("81", "Self-pay"),
}
APPOINTMENT_STATUS = {"confirmed": "booked", "checked_in": "checked-in"}


def instant(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def coding(code: v.Code) -> dict[str, str]:
    return {"system": code.system, "code": code.code, "display": code.display}


def concept(*codes: v.Code | None) -> dict[str, Any]:
    present = [c for c in codes if c is not None]
    return {"coding": [coding(c) for c in present], "text": present[0].display}


def organization(practice: Practice) -> Resource:
    return {
        "resourceType": "Organization",
        "id": str(practice.organization_id),
        "meta": {"profile": [US_CORE + "us-core-organization"]},
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov",
                        "display": "Healthcare Provider",
                    }
                ]
            }
        ],
        "name": practice.name,
    }


def location(loc: LocationRec, practice: Practice) -> Resource:
    return {
        "resourceType": "Location",
        "id": str(loc.id),
        "meta": {"profile": [US_CORE + "us-core-location"]},
        "status": "active",
        "name": loc.name,
        "telecom": [{"system": "phone", "value": loc.phone, "use": "work"}],
        "address": {
            "line": [loc.line],
            "city": loc.city,
            "state": loc.state,
            "postalCode": loc.postal_code,
            "country": "US",
        },
        "managingOrganization": {"reference": f"Organization/{practice.organization_id}"},
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": loc.time_zone}
        ],
    }


def practitioner(provider: ProviderRec) -> Resource:
    taxonomy = v.SPECIALTY_TAXONOMY[provider.specialty]
    return {
        "resourceType": "Practitioner",
        "id": str(provider.id),
        "meta": {"profile": [US_CORE + "us-core-practitioner"]},
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": provider.npi}],
        "active": True,
        "name": [
            {"family": provider.family, "given": [provider.given], "suffix": [provider.credential]}
        ],
        "qualification": [
            {
                "code": {
                    "coding": [{"system": v.NUCC, "code": taxonomy, "display": provider.specialty}]
                }
            }
        ],
    }


def patient(rec: PatientRec, *, practice_id: uuid.UUID) -> Resource:
    telecom = [
        {"system": c.system, "value": c.value, "use": c.use, "rank": c.rank} for c in rec.contacts
    ]
    name: dict[str, Any] = {"use": "official", "family": rec.family, "given": [rec.given]}
    names = [name]
    if rec.preferred_name:
        names.append({"use": "usual", "given": [rec.preferred_name]})
    return {
        "resourceType": "Patient",
        "id": str(rec.id),
        "meta": {"profile": [US_CORE + "us-core-patient"]},
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical record number",
                        }
                    ]
                },
                "system": MRN_SYSTEM,
                "value": rec.mrn,
            }
        ],
        "active": rec.lifecycle_stage not in ("transferred", "deceased"),
        "name": names,
        "telecom": telecom,
        "gender": rec.sex,
        "birthDate": rec.birth_date.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [rec.address_line],
                "city": rec.city,
                "state": rec.state,
                "postalCode": rec.postal_code,
                "country": "US",
            }
        ],
        "communication": [
            {
                "language": {
                    "coding": [{"system": "urn:ietf:bcp:47", "code": rec.preferred_language}]
                },
                "preferred": True,
            }
        ],
        "generalPractitioner": [{"reference": f"Practitioner/{rec.primary_provider_id}"}],
        "managingOrganization": {"reference": f"Organization/{practice_id}"},
    }


def payer_organization(name: str) -> Resource:
    return {
        "resourceType": "Organization",
        "id": str(payer_id(name)),
        "meta": {"profile": [US_CORE + "us-core-organization"]},
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "pay",
                        "display": "Payer",
                    }
                ]
            }
        ],
        "name": name,
    }


def _payor(rec: PatientRec, category: str, name: str) -> dict[str, str]:
    # FHIR names the patient as the payor of a self-pay coverage.
    if category == "self_pay":
        return {"reference": f"Patient/{rec.id}", "display": name}
    return {"reference": f"Organization/{payer_id(name)}", "display": name}


def coverages(rec: PatientRec) -> Iterator[Resource]:
    for cov in rec.coverages:
        sopt_code, sopt_display = SOPT[cov.category]
        resource: Resource = {
            "resourceType": "Coverage",
            "id": str(cov.id),
            "meta": {"profile": [US_CORE + "us-core-coverage"]},
            "status": "active" if cov.status == "active" else "cancelled",
            "type": {
                "coding": [{"system": PAYER_TYPE, "code": sopt_code, "display": sopt_display}]
            },
            "beneficiary": {"reference": f"Patient/{rec.id}"},
            "relationship": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                        "code": "self",
                    }
                ]
            },
            "period": {"start": cov.period_start.isoformat()},
            "payor": [_payor(rec, cov.category, cov.payer_name)],
            "order": cov.rank,
        }
        if cov.period_end:
            resource["period"]["end"] = cov.period_end.isoformat()
        if cov.member_id:
            resource["subscriberId"] = cov.member_id
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
                    "value": cov.plan_name,
                    "name": cov.plan_name,
                }
            ]
        yield resource


def appointments(rec: PatientRec) -> Iterator[Resource]:
    for appt in rec.appointments:
        yield {
            "resourceType": "Appointment",
            "id": str(appt.id),
            "status": APPOINTMENT_STATUS.get(appt.status, appt.status),
            "appointmentType": {
                "coding": [{"system": "urn:careloop:appointment-type", "code": appt.type_code}]
            },
            "start": instant(appt.start),
            "end": instant(appt.end),
            "minutesDuration": int((appt.end - appt.start).total_seconds() // 60),
            "created": instant(appt.created_at),
            "participant": [
                {"actor": {"reference": f"Patient/{rec.id}"}, "status": "accepted"},
                {"actor": {"reference": f"Practitioner/{appt.provider_id}"}, "status": "accepted"},
                {"actor": {"reference": f"Location/{appt.location_id}"}, "status": "accepted"},
            ],
        }


def _timing(stem: str, fact: FactRec) -> dict[str, Any]:
    """[stem]DateTime, or [stem]Period when the fact has an end."""
    if fact.end is None:
        return {f"{stem}DateTime": instant(fact.start)}
    return {f"{stem}Period": {"start": instant(fact.start), "end": instant(fact.end)}}


def _context(resource: Resource, fact: FactRec) -> Resource:
    """The visit the fact belongs to and why it was done, where the fact says."""
    if fact.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{fact.encounter_id}"}
    if fact.reason:
        resource["reasonCode"] = [concept(fact.reason)]
    return resource


def _encounter(rec: PatientRec, fact: FactRec) -> Resource:
    virtual = fact.category == "VR"
    resource: Resource = {
        "resourceType": "Encounter",
        "id": str(fact.id),
        "meta": {"profile": [US_CORE + "us-core-encounter"]},
        "status": fact.status,
        "class": {
            "system": ACT_CODE,
            "code": fact.category,
            "display": CLASS_DISPLAY.get(fact.category, fact.category),
        },
        "type": [concept(fact.code)],
        "subject": {"reference": f"Patient/{rec.id}"},
        "period": {"start": instant(fact.start)},
    }
    if fact.provider_id:
        resource["participant"] = [
            {"individual": {"reference": f"Practitioner/{fact.provider_id}"}}
        ]
    if fact.appointment_id:
        resource["appointment"] = [{"reference": f"Appointment/{fact.appointment_id}"}]
    if fact.end:
        resource["period"]["end"] = instant(fact.end)
    if not virtual and fact.location_id:
        resource["location"] = [{"location": {"reference": f"Location/{fact.location_id}"}}]
    if fact.reason:
        resource["reasonCode"] = [concept(fact.reason)]
    return resource


def _condition(rec: PatientRec, fact: FactRec) -> Resource:
    resource: Resource = {
        "resourceType": "Condition",
        "id": str(fact.id),
        "meta": {"profile": [US_CORE + "us-core-condition-problems-health-concerns"]},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": fact.status,
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": CONDITION_CATEGORY,
                        "code": "problem-list-item",
                        "display": "Problem List Item",
                    }
                ]
            }
        ],
        "code": concept(fact.code, fact.alt),
        "subject": {"reference": f"Patient/{rec.id}"},
        "onsetDateTime": instant(fact.start),
        "recordedDate": instant(fact.recorded or fact.start),
    }
    if fact.end:
        resource["abatementDateTime"] = instant(fact.end)
    return resource


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": v.UCUM, "code": unit}


def _observation(rec: PatientRec, fact: FactRec) -> Resource:
    categories = (fact.also_category, fact.category) if fact.also_category else (fact.category,)
    resource: Resource = {
        "resourceType": "Observation",
        "id": str(fact.id),
        "status": fact.status,
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": c}]} for c in categories],
        "code": concept(fact.code, fact.alt),
        "subject": {"reference": f"Patient/{rec.id}"},
        **_timing("effective", fact),
    }
    if fact.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{fact.encounter_id}"}
    if fact.provider_id:
        resource["performer"] = [{"reference": f"Practitioner/{fact.provider_id}"}]
    if fact.value_num is not None:
        resource["valueQuantity"] = _quantity(fact.value_num, fact.unit)
    elif fact.value_code is not None:
        resource["valueCodeableConcept"] = concept(fact.value_code)
    if fact.components:
        resource["component"] = [
            {"code": concept(c.code), "valueQuantity": _quantity(c.value, c.unit)}
            for c in fact.components
        ]
    return resource


def _procedure(rec: PatientRec, fact: FactRec) -> Resource:
    resource: Resource = {
        "resourceType": "Procedure",
        "id": str(fact.id),
        "meta": {"profile": [US_CORE + "us-core-procedure"]},
        "status": fact.status,
        "code": concept(fact.code, fact.alt),
        "subject": {"reference": f"Patient/{rec.id}"},
        **_timing("performed", fact),
    }
    return _context(resource, fact)


def _immunization(rec: PatientRec, fact: FactRec) -> Resource:
    resource: Resource = {
        "resourceType": "Immunization",
        "id": str(fact.id),
        "meta": {"profile": [US_CORE + "us-core-immunization"]},
        "status": fact.status,
        "vaccineCode": concept(fact.code),
        "patient": {"reference": f"Patient/{rec.id}"},
        "occurrenceDateTime": instant(fact.start),
        "primarySource": True,
    }
    if fact.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{fact.encounter_id}"}
    return resource


def _medication(rec: PatientRec, fact: FactRec) -> Resource:
    bounds = {"start": instant(fact.start)}
    if fact.end:
        bounds["end"] = instant(fact.end)
    resource: Resource = {
        "resourceType": "MedicationRequest",
        "id": str(fact.id),
        "meta": {"profile": [US_CORE + "us-core-medicationrequest"]},
        "status": fact.status,
        "intent": fact.intent or "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                        "code": "community",
                    }
                ]
            }
        ],
        "medicationCodeableConcept": concept(fact.code),
        "subject": {"reference": f"Patient/{rec.id}"},
        "authoredOn": instant(fact.recorded or fact.start),
        "requester": {"reference": f"Practitioner/{fact.provider_id or rec.primary_provider_id}"},
        "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": bounds}}}],
    }
    return _context(resource, fact)


def _service_request(rec: PatientRec, fact: FactRec) -> Resource:
    resource: Resource = {
        "resourceType": "ServiceRequest",
        "id": str(fact.id),
        "status": fact.status,
        "intent": fact.intent or "order",
        "code": concept(fact.code),
        "subject": {"reference": f"Patient/{rec.id}"},
        "authoredOn": instant(fact.recorded or fact.start),
        "requester": {"reference": f"Practitioner/{fact.provider_id or rec.primary_provider_id}"},
    }
    return _context(resource, fact)


FACT_MAPPERS = {
    "encounter": ("Encounter", _encounter),
    "condition": ("Condition", _condition),
    "observation": ("Observation", _observation),
    "procedure": ("Procedure", _procedure),
    "immunization": ("Immunization", _immunization),
    "medication": ("MedicationRequest", _medication),
    "service_request": ("ServiceRequest", _service_request),
}


def facts(rec: PatientRec) -> Iterator[tuple[str, Resource]]:
    for fact in rec.facts:
        resource_type, mapper = FACT_MAPPERS[fact.kind]
        yield resource_type, mapper(rec, fact)


def service_requests(rec: PatientRec) -> Iterator[Resource]:
    """Referrals as ServiceRequests (category: referral); inbound ones name the sender."""
    for ref in rec.referrals:
        status = v.REFERRAL_FHIR_STATUS[ref.status]
        resource: Resource = {
            "resourceType": "ServiceRequest",
            "id": str(ref.id),
            "status": status,
            "intent": "order",
            "category": [{"coding": [coding(v.PATIENT_REFERRAL)]}],
            "code": {"text": f"Referral to {ref.specialty}"},
            "subject": {"reference": f"Patient/{rec.id}"},
            "authoredOn": instant(ref.created_at),
            "performerType": {"text": ref.specialty},
            "note": [{"text": f"{ref.direction} referral, {ref.counterpart}"}],
        }
        if ref.direction == "outbound":
            resource["requester"] = {"reference": f"Practitioner/{ref.requester_id}"}
            resource["performer"] = [{"display": ref.counterpart}]
        else:
            resource["requester"] = {"display": ref.counterpart}
            resource["performer"] = [{"reference": f"Practitioner/{ref.requester_id}"}]
        if ref.reason:
            resource["reasonCode"] = [concept(ref.reason)]
        yield resource
