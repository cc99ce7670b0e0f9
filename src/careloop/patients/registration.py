"""Registering a patient, with duplicate detection before anything is written.

A new registration is compared with the practice's patients on what can be compared
while names stay encrypted: the same date of birth with a similar name (candidates
with that birth date are few, so their names are decrypted and compared here), or the
same phone number or e-mail address (blind index). Staff see the candidates and either
open the existing record or register anyway, saying why; nothing is merged silently.
"""

from __future__ import annotations

import datetime
import difflib
import uuid
from dataclasses import dataclass

from django.db import transaction

from careloop.core.clock import now
from careloop.patients.lifecycle import lifecycle_recompute
from careloop.patients.models import (
    ContactPoint,
    ContactSystem,
    IdentifierKind,
    Patient,
    PatientIdentifier,
    Sex,
    TimelineKind,
)
from careloop.patients.timeline import timeline_add
from careloop.security import normalize
from careloop.security.audit import audit_record
from careloop.security.fields import blind_value
from careloop.security.models import User
from careloop.security.permissions import Actor, Op, Resource, require
from careloop.security.scope import patient_scope

# How alike two names must be (difflib ratio over normalised "given family") to count.
NAME_SIMILARITY = 0.82
PRACTICE_MRN_SYSTEM = "urn:careloop:mrn"


@dataclass(frozen=True)
class Registration:
    given_name: str
    family_name: str
    birth_date: datetime.date
    sex: str = Sex.UNKNOWN
    preferred_language: str = "en"
    time_zone: str = "America/New_York"
    state: str = ""
    phone: str = ""
    email: str = ""
    mrn: str = ""


@dataclass(frozen=True)
class Candidate:
    patient: Patient
    why: str  # "same date of birth and a similar name", "same phone number"...


def _name_key(given: str, family: str) -> str:
    return normalize.name(f"{given} {family}")


def _similar(a: str, b: str) -> bool:
    if a == b:
        return True
    # Swapped given and family names are a classic duplicate.
    swapped = " ".join(reversed(b.split(" ", 1))) if " " in b else b
    return (
        max(
            difflib.SequenceMatcher(None, a, b).ratio(),
            difflib.SequenceMatcher(None, a, swapped).ratio(),
        )
        >= NAME_SIMILARITY
    )


def duplicate_candidates(*, actor: Actor, registration: Registration) -> list[Candidate]:
    """Existing patients this registration may be, with the reason for each."""
    require(actor, Op.READ, Resource.DEMOGRAPHICS)
    visible = Patient.objects.filter(patient_scope(actor), merged_into__isnull=True)
    found: dict[uuid.UUID, Candidate] = {}
    wanted = _name_key(registration.given_name, registration.family_name)
    for patient in visible.filter(birth_date=registration.birth_date)[:200]:
        if _similar(wanted, _name_key(patient.given_name, patient.family_name)):
            found[patient.pk] = Candidate(patient, "same date of birth and a similar name")
    for label, text in (
        ("phone number", registration.phone),
        ("e-mail address", registration.email),
    ):
        index = blind_value("contact", text) if text else None
        if index is None:
            continue
        owners = visible.filter(contact_points__value_bidx=index).distinct()
        for patient in owners[:20]:
            found.setdefault(patient.pk, Candidate(patient, f"same {label}"))
    if registration.mrn:
        index = blind_value("identifier", registration.mrn)
        for patient in visible.filter(identifiers__value_bidx=index).distinct()[:5]:
            found.setdefault(patient.pk, Candidate(patient, "same MRN"))
    return list(found.values())


class DuplicateSuspected(Exception):
    """Registration stopped: these existing patients may be the same person."""

    def __init__(self, candidates: list[Candidate]) -> None:
        super().__init__(f"{len(candidates)} possible duplicate(s)")
        self.candidates = candidates


def patient_register(
    *,
    actor: Actor,
    registration: Registration,
    not_a_duplicate_because: str = "",
) -> Patient:
    """Create the patient with their contact points and MRN.

    Raises `DuplicateSuspected` when candidates exist, unless staff said why this is a
    different person (`not_a_duplicate_because`, kept encrypted in the audit reason).
    """
    # Outside the transaction: a refusal's audit event must not roll back with it.
    user = require(actor, Op.WRITE, Resource.DEMOGRAPHICS)
    with transaction.atomic():
        return _register(user=user, registration=registration, why=not_a_duplicate_because)


def _register(*, user: User, registration: Registration, why: str) -> Patient:
    not_a_duplicate_because = why
    candidates = duplicate_candidates(actor=user, registration=registration)
    if candidates and not not_a_duplicate_because.strip():
        raise DuplicateSuspected(candidates)
    at = now()
    patient = Patient(
        id=uuid.uuid4(),
        given_name=registration.given_name.strip(),
        family_name=registration.family_name.strip(),
        birth_date=registration.birth_date,
        sex=registration.sex,
        preferred_language=registration.preferred_language,
        time_zone=registration.time_zone,
        state=registration.state,
        created_at=at,
        updated_at=at,
    )
    patient.save()
    # The stage is shown with its reason from the first page view on, so compute it now
    # (a new patient is in acquisition, "no visit yet") rather than leave it blank.
    lifecycle_recompute(patient=patient, as_of=at)
    if registration.phone:
        ContactPoint(
            patient=patient,
            system=ContactSystem.PHONE,
            value=normalize.phone(registration.phone),
            can_sms=True,
            can_voice=True,
        ).save()
    if registration.email:
        ContactPoint(
            patient=patient,
            system=ContactSystem.EMAIL,
            value=normalize.email(registration.email),
            can_email=True,
        ).save()
    if registration.mrn:
        PatientIdentifier(
            patient=patient,
            system=PRACTICE_MRN_SYSTEM,
            kind=IdentifierKind.MRN,
            value=normalize.identifier(registration.mrn),
        ).save()
    audit_record(
        action="patient.create",
        actor=user,
        patient_id=patient.pk,
        resource_type="Patient",
        resource_id=str(patient.pk),
        fields=["demographics", *(["contact"] if registration.phone or registration.email else [])],
        reason=not_a_duplicate_because.strip(),
    )
    timeline_add(
        patient=patient, kind=TimelineKind.PROFILE, summary="Registered", actor=user, at=at
    )
    return patient
