"""Contact points and coverages: the patient's ways to be reached and to be billed.

Every change is audited as `patient.update` naming the part that changed, and put on
the timeline with a coded summary; the values themselves (class I) go to neither.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.db import transaction

from careloop.core.errors import NotFound
from careloop.patients.models import (
    ContactPoint,
    ContactSystem,
    Coverage,
    Patient,
    TimelineKind,
)
from careloop.patients.selectors import patient_get
from careloop.patients.timeline import timeline_add
from careloop.security import normalize
from careloop.security.audit import audit_record
from careloop.security.fields import blind_value
from careloop.security.models import User
from careloop.security.permissions import Actor, Op, Resource, require


@dataclass(frozen=True)
class ContactDetails:
    system: str
    use: str
    value: str
    rank: int
    verified: bool
    can_sms: bool
    can_voice: bool
    can_email: bool


def contact_normalize(*, system: str, value: str) -> str:
    """E.164 for a phone, lower case for an e-mail; `NormalizationError` when it is neither."""
    if system == ContactSystem.PHONE:
        return normalize.phone(value)
    return normalize.email(value)


def contact_channels_error(details: ContactDetails) -> str | None:
    """Why these channels cannot travel over this kind of contact point, or None."""
    if details.system == ContactSystem.EMAIL and (details.can_sms or details.can_voice):
        return "An e-mail address cannot carry SMS or voice."
    if details.system == ContactSystem.PHONE and details.can_email:
        return "A phone number cannot carry e-mail."
    return None


def writable_patient(
    actor: Actor, patient_id: uuid.UUID, resource: Resource
) -> tuple[User, Patient]:
    """The acting user and the patient, when the actor may write `resource` for them.

    Services call it before opening their transaction, so that a refusal's audit event
    (written by `require`) is not rolled back with the refused write.
    """
    user = require(actor, Op.WRITE, resource, patient_id=patient_id)
    return user, patient_get(actor=user, patient_id=patient_id)


def _contact(patient: Patient, contact_id: uuid.UUID) -> ContactPoint:
    try:
        return ContactPoint.objects.select_for_update().get(patient=patient, pk=contact_id)
    except ContactPoint.DoesNotExist:
        raise NotFound from None


def _record_contact_change(actor: User, patient: Patient, contact_id: uuid.UUID) -> None:
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary="Contact details changed",
        actor=actor,
        ref_type="contact_point",
        ref_id=str(contact_id),
    )
    audit_record(
        action="patient.update",
        actor=actor,
        patient_id=patient.pk,
        resource_type="ContactPoint",
        resource_id=str(contact_id),
        fields=["contact_points"],
    )


def _apply(contact: ContactPoint, details: ContactDetails) -> None:
    error = contact_channels_error(details)
    if error is not None:
        raise ValueError(error)
    contact.system = details.system
    contact.use = details.use
    contact.value = contact_normalize(system=details.system, value=details.value)
    contact.rank = details.rank
    contact.verified = details.verified
    contact.can_sms = details.can_sms
    contact.can_voice = details.can_voice
    contact.can_email = details.can_email


def contact_point_add(
    *, actor: Actor, patient_id: uuid.UUID, details: ContactDetails
) -> ContactPoint:
    user, patient = writable_patient(actor, patient_id, Resource.CONTACT)
    with transaction.atomic():
        contact = ContactPoint(patient=patient)
        _apply(contact, details)
        contact.save()
        _record_contact_change(user, patient, contact.pk)
        return contact


def contact_point_update(
    *, actor: Actor, patient_id: uuid.UUID, contact_id: uuid.UUID, details: ContactDetails
) -> ContactPoint:
    user, patient = writable_patient(actor, patient_id, Resource.CONTACT)
    with transaction.atomic():
        contact = _contact(patient, contact_id)
        _apply(contact, details)
        # The whole row: `value` is re-sealed and its blind index recomputed on save.
        contact.save()
        _record_contact_change(user, patient, contact.pk)
        return contact


def contact_point_remove(*, actor: Actor, patient_id: uuid.UUID, contact_id: uuid.UUID) -> None:
    user, patient = writable_patient(actor, patient_id, Resource.CONTACT)
    with transaction.atomic():
        contact = _contact(patient, contact_id)
        contact.delete()
        _record_contact_change(user, patient, contact_id)


@transaction.atomic
def contact_email_undeliverable(*, address: str, reason: str) -> list[uuid.UUID]:
    """Stop e-mail to an address the receiving server says does not exist (a hard
    bounce), on every record that lists it: a system action, no staff member involved.
    The address stays on file for staff to correct; `reason` is coded ("hard bounce
    5.1.1"). The ids of the patients whose contact point changed."""
    index = blind_value("contact", address)
    if index is None:
        return []
    contacts = ContactPoint.objects.select_for_update().filter(
        system=ContactSystem.EMAIL, value_bidx=index, can_email=True
    )
    changed: list[uuid.UUID] = []
    for contact in contacts.order_by("id"):
        contact.can_email = False
        contact.save(update_fields=["can_email"])
        timeline_add(
            patient=contact.patient,
            kind=TimelineKind.PROFILE,
            summary=f"E-mail address no longer used: {reason}",
            ref_type="contact_point",
            ref_id=str(contact.pk),
        )
        audit_record(
            action="patient.update",
            actor_kind="system",
            actor_id="outreach",
            patient_id=contact.patient_id,
            resource_type="ContactPoint",
            resource_id=str(contact.pk),
            fields=["contact_points"],
        )
        changed.append(contact.patient_id)
    return changed


def contact_point_get(
    *, actor: Actor, patient_id: uuid.UUID, contact_id: uuid.UUID
) -> ContactPoint:
    """One contact point for its edit form; `NotFound` when it is not this patient's."""
    require(actor, Op.READ, Resource.CONTACT, patient_id=patient_id)
    patient = patient_get(actor=actor, patient_id=patient_id)
    try:
        return ContactPoint.objects.get(patient=patient, pk=contact_id)
    except ContactPoint.DoesNotExist:
        raise NotFound from None


@dataclass(frozen=True)
class CoverageDetails:
    payer_category: str
    payer_name: str
    plan_name: str
    member_id: str
    subscriber_relationship: str
    period_start: datetime.date | None
    period_end: datetime.date | None
    status: str
    rank: int


def _coverage(patient: Patient, coverage_id: uuid.UUID) -> Coverage:
    try:
        return Coverage.objects.select_for_update().get(patient=patient, pk=coverage_id)
    except Coverage.DoesNotExist:
        raise NotFound from None


def coverage_save(
    *,
    actor: Actor,
    patient_id: uuid.UUID,
    details: CoverageDetails,
    coverage_id: uuid.UUID | None = None,
) -> Coverage:
    """Add a coverage (no `coverage_id`) or change one of the patient's."""
    user, patient = writable_patient(actor, patient_id, Resource.COVERAGE)
    with transaction.atomic():
        adding = coverage_id is None
        coverage = (
            Coverage(patient=patient) if coverage_id is None else _coverage(patient, coverage_id)
        )
        if (
            details.period_start
            and details.period_end
            and details.period_end < details.period_start
        ):
            raise ValueError("coverage period ends before it starts")
        coverage.payer_category = details.payer_category
        coverage.payer_name = details.payer_name
        coverage.plan_name = details.plan_name
        coverage.member_id = details.member_id or None
        coverage.subscriber_relationship = details.subscriber_relationship
        coverage.period_start = details.period_start
        coverage.period_end = details.period_end
        coverage.status = details.status
        coverage.rank = details.rank
        coverage.save()
        timeline_add(
            patient=patient,
            kind=TimelineKind.PROFILE,
            summary="Coverage added" if adding else "Coverage changed",
            actor=user,
            ref_type="coverage",
            ref_id=str(coverage.pk),
        )
        audit_record(
            action="patient.update",
            actor=user,
            patient_id=patient.pk,
            resource_type="Coverage",
            resource_id=str(coverage.pk),
            fields=["coverages"],
        )
        return coverage


def coverage_get(*, actor: Actor, patient_id: uuid.UUID, coverage_id: uuid.UUID) -> Coverage:
    require(actor, Op.READ, Resource.COVERAGE, patient_id=patient_id)
    patient = patient_get(actor=actor, patient_id=patient_id)
    try:
        return Coverage.objects.get(patient=patient, pk=coverage_id)
    except Coverage.DoesNotExist:
        raise NotFound from None


def contact_points_list(
    *, actor: Actor, patient_id: uuid.UUID
) -> tuple[Patient, list[ContactPoint]]:
    """The patient and their contact points, for the edit page. An audited read."""
    user = require(actor, Op.READ, Resource.CONTACT, patient_id=patient_id)
    patient = patient_get(actor=user, patient_id=patient_id)
    contacts = list(patient.contact_points.all())
    audit_record(
        action="patient.view",
        actor=user,
        patient_id=patient.pk,
        resource_type="ContactPoint",
        resource_id=f"shown={len(contacts)}",
        fields=["contact_points"],
    )
    return patient, contacts


def coverages_list(*, actor: Actor, patient_id: uuid.UUID) -> tuple[Patient, list[Coverage]]:
    """The patient and their coverages, for the edit page. An audited read."""
    user = require(actor, Op.READ, Resource.COVERAGE, patient_id=patient_id)
    patient = patient_get(actor=user, patient_id=patient_id)
    coverages = list(patient.coverages.all())
    audit_record(
        action="patient.view",
        actor=user,
        patient_id=patient.pk,
        resource_type="Coverage",
        resource_id=f"shown={len(coverages)}",
        fields=["coverages"],
    )
    return patient, coverages
