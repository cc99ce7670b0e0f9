"""Read paths for consents: the history page, the profile card and the FHIR export."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.http import HttpRequest

from careloop.consent.documents import consent_needs
from careloop.consent.ledger import consent_current
from careloop.consent.models import ConsentDocument, ConsentKind, ConsentRecord, ConsentStatus
from careloop.core.clock import now
from careloop.patients.models import Patient
from careloop.patients.selectors import patient_get
from careloop.security.audit import audit_record
from careloop.security.permissions import Actor, Op, Resource, actor_allowed, require


def consent_patient(
    *, actor: Actor, patient_id: uuid.UUID, op: Op, request: HttpRequest | None = None
) -> Patient:
    """The patient for a consent page: NotFound outside scope, PermissionDenied for
    a role that may not `op` consents."""
    require(actor, op, Resource.CONSENT, request=request, patient_id=patient_id)
    return patient_get(actor=actor, patient_id=patient_id)


def consent_history_list(
    *, actor: Actor, patient_id: uuid.UUID, request: HttpRequest | None = None
) -> tuple[Patient, list[ConsentRecord]]:
    """Every record of the patient, newest first, audited as a read."""
    patient = consent_patient(actor=actor, patient_id=patient_id, op=Op.READ, request=request)
    records = list(
        ConsentRecord.objects.filter(patient=patient)
        .select_related("captured_by")
        .order_by("-captured_at", "-recorded_at")
    )
    audit_record(
        action="consent.view",
        request=request,
        actor=actor,
        patient_id=patient.pk,
        resource_type="consent",
        fields=("history",),
    )
    return patient, records


@dataclass(frozen=True)
class ConsentLine:
    kind: str
    label: str
    status: ConsentStatus | None


@dataclass(frozen=True)
class ConsentSummary:
    patient: Patient
    lines: list[ConsentLine]
    needs: list[ConsentDocument]
    may_write: bool


def consent_summary(*, actor: Actor, patient: Patient) -> ConsentSummary | None:
    """What the profile card shows: the current answer per kind (whole-kind scope) and
    the documents owed; None for a role that may not read consents (the card is hidden).

    The patient page that includes the card has already checked scope and audited the
    view of the patient.
    """
    if not actor_allowed(actor, Op.READ, Resource.CONSENT):
        return None
    at = now()
    lines = [
        ConsentLine(
            kind, str(label), consent_current(patient=patient, kind=ConsentKind(kind), at=at)
        )
        for kind, label in ConsentKind.choices
    ]
    return ConsentSummary(
        patient=patient,
        lines=lines,
        needs=consent_needs(patient=patient, at=at),
        may_write=actor_allowed(actor, Op.WRITE, Resource.CONSENT),
    )
