"""Small, explicit builders for a hand-made practice: every value a test checks is visible.

Rows go through the models' `save()`, which encrypts the class-I fields and fills the
blind indexes exactly as production writes do.
"""

from __future__ import annotations

import datetime
import itertools
from typing import Any

from careloop.clinical.models import ClinicalFact
from careloop.core import clock
from careloop.patients.models import (
    ContactPoint,
    Coverage,
    IdentifierKind,
    Patient,
    PatientIdentifier,
)
from careloop.scheduling.models import Appointment, AppointmentType, Location, Provider
from careloop.security.models import User

PASSWORD = "correct horse battery staple"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.1"
_npi = itertools.count(1000000001)
_created = itertools.count()


def make_user(role: str, username: str | None = None, **extra: Any) -> User:
    return User.objects.create_user(
        username=username or f"{role}-user", password=PASSWORD, role=role, **extra
    )


def make_location(name: str = "Riverbend Main Clinic") -> Location:
    return Location.objects.create(
        name=name, time_zone="America/Chicago", address="100 River Rd, Springfield IL"
    )


def make_provider(location: Location, name: str = "Dr. Maya Chen") -> Provider:
    return Provider.objects.create(
        display_name=name, npi=str(next(_npi)), specialty="Family medicine", location=location
    )


def make_patient(given: str, family: str, birth_date: datetime.date, **fields: Any) -> Patient:
    # Distinct, increasing creation times so "newest first" is deterministic.
    created = fields.pop(
        "created_at",
        datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
        + datetime.timedelta(minutes=next(_created)),
    )
    patient = Patient(
        given_name=given,
        family_name=family,
        birth_date=birth_date,
        created_at=created,
        updated_at=created,
        **fields,
    )
    patient.save()
    return patient


def add_contact(patient: Patient, system: str, value: str, **fields: Any) -> ContactPoint:
    contact = ContactPoint(patient=patient, system=system, value=value, **fields)
    contact.save()
    return contact


def add_mrn(patient: Patient, value: str) -> PatientIdentifier:
    identifier = PatientIdentifier(
        patient=patient, system=MRN_SYSTEM, kind=IdentifierKind.MRN, value=value
    )
    identifier.save()
    return identifier


def add_coverage(patient: Patient, **fields: Any) -> Coverage:
    coverage = Coverage(patient=patient, **fields)
    coverage.save()
    return coverage


def appointment_type(code: str = "follow-up") -> AppointmentType:
    kind, _ = AppointmentType.objects.get_or_create(
        code=code, defaults={"name": "Follow-up visit", "minutes": 20}
    )
    return kind


def add_appointment(
    patient: Patient, provider: Provider, start: datetime.datetime, status: str = "booked"
) -> Appointment:
    return Appointment.objects.create(
        patient=patient,
        provider=provider,
        location=provider.location,
        appointment_type=appointment_type(),
        start=start,
        end=start + datetime.timedelta(minutes=20),
        status=status,
        created_at=clock.now(),
    )


def add_fact(patient: Patient, kind: str, code: str) -> ClinicalFact:
    return ClinicalFact.objects.create(
        patient=patient, kind=kind, system="http://snomed.info/sct", code=code
    )
