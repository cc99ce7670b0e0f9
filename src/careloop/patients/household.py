"""Caregivers and household members, and what each may do for the patient.

A relationship is never deleted: it is ended (`period_end`), so the history of who
could act for the patient, and when, stays readable. The portal's proxy access reads
`relationships_in_force`.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q, QuerySet

from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.core.practice import practice_today
from careloop.patients.contacts import writable_patient
from careloop.patients.models import Patient, PatientRelationship, TimelineKind
from careloop.patients.selectors import patient_get
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Actor, Op, Resource, require


@dataclass(frozen=True)
class RelationshipDetails:
    code: str
    related_patient_id: uuid.UUID | None
    related_name: str
    may_schedule: bool
    may_message: bool
    may_view_record: bool
    may_sign_consents: bool
    period_start: datetime.date


def relationships_in_force(*, patient: Patient, on: datetime.date) -> QuerySet[PatientRelationship]:
    """The relationships that hold on `on`: started, and not ended before that day."""
    return patient.relationships.filter(period_start__lte=on).filter(
        Q(period_end__isnull=True) | Q(period_end__gte=on)
    )


def _record(user: User, relationship: PatientRelationship, *, action: str, summary: str) -> None:
    timeline_add(
        patient=relationship.patient,
        kind=TimelineKind.PROFILE,
        summary=summary,
        actor=user,
        ref_type="patient_relationship",
        ref_id=str(relationship.pk),
    )
    audit_record(
        action=action,
        actor=user,
        patient_id=relationship.patient_id,
        resource_type="PatientRelationship",
        resource_id=str(relationship.pk),
        fields=["relationships"],
    )


def relationship_add(
    *, actor: Actor, patient_id: uuid.UUID, details: RelationshipDetails
) -> PatientRelationship:
    """Name a caregiver or household member: another patient, or a person by name."""

    user, patient = writable_patient(actor, patient_id, Resource.DEMOGRAPHICS)
    with transaction.atomic():
        related: Patient | None = None
        if details.related_patient_id is not None:
            # The other person's record must be one this actor may see, like any other.
            related = patient_get(actor=user, patient_id=details.related_patient_id)
            if related.pk == patient.pk:
                raise ValueError("a patient cannot be their own caregiver")
        elif not details.related_name.strip():
            raise ValueError("a relationship needs a patient or a name")
        relationship = PatientRelationship(
            patient=patient,
            related_patient=related,
            related_name=None if related else details.related_name.strip(),
            code=details.code,
            may_schedule=details.may_schedule,
            may_message=details.may_message,
            may_view_record=details.may_view_record,
            may_sign_consents=details.may_sign_consents,
            period_start=details.period_start,
            created_at=now(),
        )
        relationship.save()
        label = relationship.get_code_display()
        _record(user, relationship, action="patient.relationship_add", summary=f"{label} added")
        return relationship


def relationship_end(
    *,
    actor: Actor,
    patient_id: uuid.UUID,
    relationship_id: uuid.UUID,
    on: datetime.date | None = None,
) -> PatientRelationship:
    """End a relationship on `on` (today by default); an ended one stays ended."""

    user, patient = writable_patient(actor, patient_id, Resource.DEMOGRAPHICS)
    with transaction.atomic():
        try:
            relationship = PatientRelationship.objects.select_for_update().get(
                patient=patient, pk=relationship_id
            )
        except PatientRelationship.DoesNotExist:
            raise NotFound from None
        if relationship.period_end is not None:
            return relationship
        relationship.period_end = max(on or practice_today(), relationship.period_start)
        relationship.save(update_fields=["period_end"])
        label = relationship.get_code_display()
        _record(user, relationship, action="patient.relationship_end", summary=f"{label} ended")
        return relationship


def relationships_list(
    *, actor: Actor, patient_id: uuid.UUID
) -> tuple[Patient, list[PatientRelationship]]:
    """The patient and every relationship, current first then ended. An audited read."""
    user = require(actor, Op.READ, Resource.DEMOGRAPHICS, patient_id=patient_id)
    patient = patient_get(actor=user, patient_id=patient_id)
    relationships = list(
        patient.relationships.select_related("related_patient").order_by(
            F("period_end").desc(nulls_first=True), "period_start"
        )
    )
    audit_record(
        action="patient.view",
        actor=user,
        patient_id=patient.pk,
        resource_type="PatientRelationship",
        resource_id=f"shown={len(relationships)}",
        fields=["relationships"],
    )
    return patient, relationships
