"""The patient page's at-a-glance parts: lifecycle stage, timeline, tags, care team.

`patient_overview` is the read for the parts the profile selector does not load;
the writes here are recomputing the stage, setting the tags and the care team.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F

from careloop.core.clock import now
from careloop.patients.contacts import writable_patient
from careloop.patients.lifecycle import StageResult, lifecycle_recompute
from careloop.patients.models import (
    Patient,
    PatientNote,
    PatientRelationship,
    PatientTag,
    TimelineEvent,
    TimelineKind,
)
from careloop.patients.selectors import patient_get
from careloop.patients.timeline import timeline_add, timeline_events
from careloop.scheduling.models import Location, Provider
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Actor, Op, Resource, actor_allowed, require

TIMELINE_LENGTH = 50


@dataclass(frozen=True)
class Overview:
    """What the patient page shows beyond the profile. A part the actor may not read is
    None; `can_*` say which edit buttons to offer."""

    timeline: list[TimelineEvent]
    tags: list[str]
    relationships: list[PatientRelationship]
    notes: list[PatientNote] | None
    can_recompute: bool
    can_edit_contacts: bool
    can_edit_coverage: bool
    can_write_notes: bool


def patient_overview(*, actor: Actor, patient_id: uuid.UUID) -> Overview:
    """The timeline (newest first, with who), tags, household and the latest notes."""
    user = require(actor, Op.READ, Resource.DEMOGRAPHICS, patient_id=patient_id)
    patient = patient_get(actor=user, patient_id=patient_id)

    def may(op: Op, resource: Resource) -> bool:
        return actor_allowed(user, op, resource)

    notes = None
    if may(Op.READ, Resource.NOTES):
        notes = list(PatientNote.objects.filter(patient=patient).select_related("author")[:5])
    shown = ["timeline", "tags", "care_team", "relationships"]
    if notes is not None:
        shown.append("notes")
    audit_record(
        action="patient.timeline_view",
        actor=user,
        patient_id=patient.pk,
        resource_type="Patient",
        resource_id=str(patient.pk),
        fields=shown,
    )
    return Overview(
        timeline=timeline_events(patient=patient, limit=TIMELINE_LENGTH),
        tags=list(patient.tags.values_list("tag", flat=True)),
        relationships=list(
            patient.relationships.select_related("related_patient").order_by(
                F("period_end").desc(nulls_first=True), "period_start"
            )
        ),
        notes=notes,
        can_recompute=may(Op.WRITE, Resource.DEMOGRAPHICS),
        can_edit_contacts=may(Op.WRITE, Resource.CONTACT),
        can_edit_coverage=may(Op.WRITE, Resource.COVERAGE),
        can_write_notes=may(Op.WRITE, Resource.NOTES),
    )


def patient_lifecycle_recompute(*, actor: Actor, patient_id: uuid.UUID) -> StageResult:
    """Run the lifecycle rules now, on staff request (e.g. after fixing a record)."""
    user, patient = writable_patient(actor, patient_id, Resource.DEMOGRAPHICS)
    with transaction.atomic():
        result = lifecycle_recompute(patient=patient)
        audit_record(
            action="patient.lifecycle_recompute",
            actor=user,
            patient_id=patient.pk,
            resource_type="Patient",
            resource_id=str(patient.pk),
            fields=["lifecycle_stage", "lifecycle_reason"],
        )
    return result


def _profile_changed(user: User, patient: Patient, *, summary: str, fields: list[str]) -> None:
    timeline_add(patient=patient, kind=TimelineKind.PROFILE, summary=summary, actor=user)
    audit_record(
        action="patient.update",
        actor=user,
        patient_id=patient.pk,
        resource_type="Patient",
        resource_id=str(patient.pk),
        fields=fields,
    )


def patient_tags_set(*, actor: Actor, patient_id: uuid.UUID, tags: list[str]) -> list[str]:
    """Make the patient's tags exactly `tags` (slugs); returns them sorted."""
    user, patient = writable_patient(actor, patient_id, Resource.DEMOGRAPHICS)
    with transaction.atomic():
        wanted = set(tags)
        current = set(patient.tags.values_list("tag", flat=True))
        if wanted == current:
            return sorted(current)
        patient.tags.filter(tag__in=current - wanted).delete()
        at = now()
        PatientTag.objects.bulk_create(
            [
                PatientTag(patient=patient, tag=tag, created_at=at)
                for tag in sorted(wanted - current)
            ]
        )
        # Tags are coded slugs chosen by staff, not free text about the patient.
        _profile_changed(user, patient, summary="Tags changed", fields=["tags"])
        return sorted(wanted)


def patient_care_team_set(
    *,
    actor: Actor,
    patient_id: uuid.UUID,
    primary_provider: Provider | None,
    home_location: Location | None,
    care_coordinator: User | None,
) -> Patient:
    user, patient = writable_patient(actor, patient_id, Resource.DEMOGRAPHICS)
    with transaction.atomic():
        patient.primary_provider = primary_provider
        patient.home_location = home_location
        patient.care_coordinator = care_coordinator
        patient.updated_at = now()
        patient.save(
            update_fields=["primary_provider", "home_location", "care_coordinator", "updated_at"]
        )
        _profile_changed(
            user,
            patient,
            summary="Care team changed",
            fields=["primary_provider", "home_location", "care_coordinator"],
        )
        return patient
