"""Merging a duplicate patient into the record that survives, keeping every history.

Everything that points at the duplicate (contact points, identifiers, coverages,
appointments, clinical facts, consents, the timeline...) is re-pointed at the survivor
in one transaction; the duplicate's own row stays, marked `merged_into`, so its
demographics remain readable and links to it still resolve. The audit log is not
rewritten: its events keep the id they were recorded with, and the merge itself is an
audit event naming both.
"""

from __future__ import annotations

import uuid

from django.db import models, transaction

from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.patients.models import Patient, PatientIdentifier, PatientMerge, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record
from careloop.security.models import AuditEvent, User
from careloop.security.permissions import Actor, Op, Resource, require
from careloop.security.scope import patient_scope


class MergeRefused(ValueError):
    """The merge cannot be done as asked (same record twice, already merged)."""


def _lock_pair(actor: Actor | None, first: uuid.UUID, second: uuid.UUID) -> tuple[Patient, Patient]:
    # Lock both rows in id order: two merges of the same pair cannot deadlock.
    scope = patient_scope(actor) if actor is not None else models.Q()
    rows = {
        p.pk: p
        for p in Patient.objects.filter(scope, pk__in=[first, second])
        .order_by("pk")
        .select_for_update()
    }
    if first not in rows or second not in rows:
        raise NotFound
    return rows[first], rows[second]


def patient_merge(*, actor: Actor, survivor_id: uuid.UUID, duplicate_id: uuid.UUID) -> PatientMerge:
    """Fold `duplicate_id` into `survivor_id`; the duplicate is kept, marked merged."""
    # Outside the transaction: a refusal's audit event must not roll back with it.
    user = require(actor, Op.WRITE, Resource.DEMOGRAPHICS, patient_id=survivor_id)
    with transaction.atomic():
        return _merge(user=user, survivor_id=survivor_id, duplicate_id=duplicate_id)


def patient_merge_from_feed(
    *, feed: str, survivor_id: uuid.UUID, duplicate_id: uuid.UUID
) -> PatientMerge:
    """Fold two records that an EHR feed says are one person (HL7 ADT A40), in the
    caller's transaction. The feed's registration is its authority: there is no staff
    user, so the merge is audited as the integration `feed` and `merged_by` stays empty."""
    return _merge(user=None, feed=feed, survivor_id=survivor_id, duplicate_id=duplicate_id)


def _merge(
    *, user: User | None, feed: str = "", survivor_id: uuid.UUID, duplicate_id: uuid.UUID
) -> PatientMerge:
    if survivor_id == duplicate_id:
        raise MergeRefused("a record cannot be merged into itself")
    survivor, duplicate = _lock_pair(user, survivor_id, duplicate_id)
    if survivor.merged_into_id is not None or duplicate.merged_into_id is not None:
        raise MergeRefused("one of these records was already merged")
    moved: dict[str, int] = {}
    # An identifier both records carry (same system, same value) stays once.
    survivor_keys = set(survivor.identifiers.values_list("system", "value_bidx"))
    for ident in duplicate.identifiers.all():
        if (ident.system, bytes(ident.value_bidx or b"")) in {
            (s, bytes(v or b"")) for s, v in survivor_keys
        }:
            PatientIdentifier.objects.filter(pk=ident.pk).delete()
    for relation in Patient._meta.related_objects:
        if relation.related_model is PatientMerge or not isinstance(relation, models.ManyToOneRel):
            continue
        related: type[models.Model] = relation.related_model  # type: ignore[assignment]
        field = relation.field
        # One row per patient (e.g. communication preferences): the survivor's wins.
        if (
            relation.one_to_one
            and related._default_manager.filter(**{field.name: survivor}).exists()
        ):
            continue
        if field.model is Patient:
            continue  # merged_into itself
        # Rows derived from others (care-gap results and gaps) say how they merge.
        merge_rows = getattr(related, "merge_rows", None)
        if merge_rows is not None:
            count = merge_rows(survivor=survivor, duplicate=duplicate)
        else:
            count = related._default_manager.filter(**{field.name: duplicate}).update(
                **{field.name: survivor}
            )
        if count:
            moved[related._meta.label] = count
    at = now()
    duplicate.merged_into = survivor
    duplicate.updated_at = at
    duplicate.save(update_fields=["merged_into", "updated_at"])
    merge = PatientMerge.objects.create(
        survivor=survivor, merged_patient_id=duplicate.pk, merged_by=user, merged_at=at, moved=moved
    )
    for patient_id in (survivor.pk, duplicate.pk):
        audit_record(
            action="patient.merge",
            actor=user,
            actor_kind=None if user is not None else AuditEvent.ActorKind.INTEGRATION,
            actor_id="" if user is not None else feed,
            patient_id=patient_id,
            resource_type="Patient",
            resource_id=f"{duplicate.pk}->{survivor.pk}",
            fields=sorted(moved),
        )
    timeline_add(
        patient=survivor,
        kind=TimelineKind.PROFILE,
        summary=f"Merged a duplicate record ({sum(moved.values())} items moved)",
        actor=user,
        at=at,
        ref_type="patient_merge",
        ref_id=str(merge.pk),
    )
    return merge
