"""Writing a patient's postal address (and the time zone it implies)."""

from __future__ import annotations

import uuid

from django.db import transaction

from careloop.core.clock import now
from careloop.patients.address import Address, address_normalize, time_zone_for
from careloop.patients.contacts import writable_patient
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record
from careloop.security.permissions import Actor, Resource


def patient_address_set(
    *, actor: Actor, patient_id: uuid.UUID, line: str, city: str, state: str, postal_code: str
) -> Patient:
    """Store the address in USPS form and the time zone derived from it.

    `AddressError` (nothing written) when the address cannot be read.
    """
    user, patient = writable_patient(actor, patient_id, Resource.DEMOGRAPHICS)
    address: Address = address_normalize(line=line, city=city, state=state, postal_code=postal_code)
    zone = time_zone_for(state=address.state, postal_code=address.postal_code)
    with transaction.atomic():
        patient.address_line = address.line
        patient.city = address.city
        patient.state = address.state
        patient.postal_code = address.postal_code
        changed_zone = patient.time_zone != zone
        patient.time_zone = zone
        patient.updated_at = now()
        patient.save(
            update_fields=[
                "address_line",
                "city",
                "state",
                "postal_code",
                "time_zone",
                "updated_at",
            ]
        )
        audit_record(
            action="patient.update",
            actor=user,
            patient_id=patient.pk,
            resource_type="Patient",
            resource_id=str(patient.pk),
            fields=["address", *(["time_zone"] if changed_zone else [])],
        )
        timeline_add(
            patient=patient,
            kind=TimelineKind.PROFILE,
            summary="Address changed" + (f"; time zone now {zone}" if changed_zone else ""),
            actor=user,
        )
    return patient
