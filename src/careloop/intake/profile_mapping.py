"""Answers the practice copies onto the patient's profile when a form is completed.

A questionnaire's `mapping` names, per linkId, one field of a short allowlist
(`FIELDS`). The patient is the author of the change: each write is audited as
`patient.update` by the patient's portal user and put on the timeline with a coded
summary, as the staff services in careloop.patients do. The patients app's services
take a staff actor (their permission table has no row for a patient writing their own
profile), so the writes are here, kept to these fields: a new phone number or
e-mail address is added unverified and carries no channel until staff verify it.
"""

from __future__ import annotations

import re

from django.db import transaction

from careloop.core.clock import now
from careloop.core.practice import practice_today
from careloop.intake.answers import Answers
from careloop.intake.definition import Value
from careloop.patients.contacts import contact_normalize
from careloop.patients.models import (
    ContactPoint,
    ContactSystem,
    ContactUse,
    Patient,
    PatientRelationship,
    RelationshipCode,
    TimelineKind,
)
from careloop.patients.timeline import timeline_add
from careloop.security import normalize
from careloop.security.audit import audit_record
from careloop.security.fields import blind_value
from careloop.security.models import User

FIELDS: dict[str, str] = {
    "preferred_language": "Preferred language (a code such as en or es)",
    "mobile_phone": "Mobile phone (added unverified)",
    "email": "E-mail address (added unverified)",
    "emergency_contact_name": "Emergency contact (added as a named contact)",
}
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2})?$")


def _text(values: list[Value]) -> str:
    first = values[0]
    if isinstance(first, tuple):
        return first[1]
    return str(first).strip()


def _record(
    user: User, patient: Patient, *, fields: list[str], summary: str, ref: str = ""
) -> None:
    audit_record(
        action="patient.update",
        actor=user,
        patient_id=patient.pk,
        resource_type="Patient",
        resource_id=str(patient.pk),
        fields=fields,
    )
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary=summary,
        actor=user,
        ref_type="questionnaire_response",
        ref_id=ref,
    )


def _language(user: User, patient: Patient, text: str, ref: str) -> str:
    code = text.lower()
    if not _LANGUAGE.match(code):
        return "preferred_language not a language code"
    if patient.preferred_language == code:
        return ""
    patient.preferred_language = code
    patient.updated_at = now()
    patient.save(update_fields=["preferred_language", "updated_at"])
    _record(
        user,
        patient,
        fields=["preferred_language"],
        summary=f"Preferred language now {code} (from a form)",
        ref=ref,
    )
    return ""


def _contact(user: User, patient: Patient, system: str, text: str, ref: str) -> str:
    try:
        value = contact_normalize(system=system, value=text)
    except normalize.NormalizationError:
        return f"{system} answer not usable"
    kind = "contact"
    if ContactPoint.objects.filter(patient=patient, value_bidx=blind_value(kind, value)).exists():
        return ""
    rank = patient.contact_points.filter(system=system).count() + 1
    contact = ContactPoint(
        patient=patient,
        system=system,
        use=ContactUse.MOBILE if system == ContactSystem.PHONE else ContactUse.HOME,
        value=value,
        rank=rank,
    )
    contact.save()
    audit_record(
        action="patient.update",
        actor=user,
        patient_id=patient.pk,
        resource_type="ContactPoint",
        resource_id=str(contact.pk),
        fields=["contact_points"],
    )
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary="Contact details added from a form (unverified)",
        actor=user,
        ref_type="contact_point",
        ref_id=str(contact.pk),
    )
    return ""


def _emergency(user: User, patient: Patient, text: str, ref: str) -> str:
    name = text[:200]
    today = practice_today()
    for existing in patient.relationships.filter(
        related_patient__isnull=True, period_end__isnull=True
    ):
        if (existing.related_name or "").casefold() == name.casefold():
            return ""
    relationship = PatientRelationship(
        patient=patient,
        related_name=name,
        code=RelationshipCode.OTHER,
        period_start=today,
        created_at=now(),
    )
    relationship.save()
    audit_record(
        action="patient.relationship_add",
        actor=user,
        patient_id=patient.pk,
        resource_type="PatientRelationship",
        resource_id=str(relationship.pk),
        fields=["relationships"],
    )
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary="Emergency contact added from a form",
        actor=user,
        ref_type="patient_relationship",
        ref_id=str(relationship.pk),
    )
    return ""


def profile_mapping_apply(
    *, user: User, patient: Patient, mapping: dict[str, str], answers: Answers, response_id: str
) -> list[str]:
    """Copy the mapped answers onto the profile; the coded reasons of what was skipped.

    Runs inside the completing transaction: the profile changes with the response or
    not at all. A skipped answer (not a phone number, say) is put on the timeline.
    """
    skipped: list[str] = []
    with transaction.atomic():
        for link_id, target in sorted(mapping.items()):
            values = answers.get(link_id)
            if not values or target not in FIELDS:
                continue
            text = _text(values)
            if not text:
                continue
            if target == "preferred_language":
                reason = _language(user, patient, text, response_id)
            elif target == "mobile_phone":
                reason = _contact(user, patient, ContactSystem.PHONE, text, response_id)
            elif target == "email":
                reason = _contact(user, patient, ContactSystem.EMAIL, text, response_id)
            else:
                reason = _emergency(user, patient, text, response_id)
            if reason:
                skipped.append(reason)
        if skipped:
            timeline_add(
                patient=patient,
                kind=TimelineKind.PROFILE,
                summary="Form answers not copied to the profile: " + "; ".join(skipped),
                actor=user,
                ref_type="questionnaire_response",
                ref_id=response_id,
            )
    return skipped
