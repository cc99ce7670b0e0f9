"""The consent ledger: append a record, read the current state.

Records are never edited. `consent_record` appends one (with its integrity hash, audit
event and timeline entry, in one transaction); `consent_current` answers "what holds
for this patient, kind and scope at this moment" from the newest record whose period
covers it.
"""

from __future__ import annotations

import datetime
import uuid

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest

from careloop.consent.integrity import consent_integrity_hash
from careloop.consent.models import (
    CaptureMethod,
    ConsentDocument,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
)
from careloop.core.clock import now
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record
from careloop.security.models import User


@transaction.atomic
def consent_record(
    *,
    patient: Patient,
    kind: ConsentKind,
    status: ConsentStatus,
    capture_method: CaptureMethod,
    scope: str = "",
    captured_by: User | None = None,
    captured_at: datetime.datetime | None = None,
    period_end: datetime.datetime | None = None,
    source_ip: str | None = None,
    document_version: str = "",
    document_sha256: str = "",
    note: str | None = None,
    document: ConsentDocument | None = None,
    signature_name: str | None = None,
    signer_is_proxy: bool = False,
    proxy_name: str | None = None,
    proxy_authority: str | None = None,
    request: HttpRequest | None = None,
) -> ConsentRecord:
    """Append a consent record; the ledger's newest covering record is what holds.

    Callers check permission first (careloop.consent.services); this is the one place
    a record is written, so every path gets the hash, the audit event and the timeline.
    A `document` supplies the version and hash shown to the signer.
    """
    at = now()
    if document is not None:
        document_version, document_sha256 = document.version, document.body_sha256
    record = ConsentRecord(
        id=uuid.uuid4(),
        patient=patient,
        kind=kind,
        scope=scope,
        status=status,
        period_start=captured_at or at,
        period_end=period_end,
        capture_method=capture_method,
        captured_at=captured_at or at,
        recorded_at=at,
        captured_by=captured_by,
        source_ip=source_ip,
        document_version=document_version,
        document_sha256=document_sha256,
        note=note,
        document=document,
        signature_name=signature_name,
        signer_is_proxy=signer_is_proxy,
        proxy_name=proxy_name,
        proxy_authority=proxy_authority,
    )
    record.integrity_hash = consent_integrity_hash(record)
    record.save()
    timeline_add(
        patient=patient,
        kind=TimelineKind.CONSENT,
        summary=f"Consent: {ConsentKind(kind).label} {ConsentStatus(status).label.lower()}",
        at=record.captured_at,
        actor=captured_by,
        ref_type="consent",
        ref_id=str(record.id),
    )
    actor_kwargs: dict[str, object] = (
        {"actor": captured_by} if captured_by is not None else {"actor_kind": "system"}
    )
    audit_record(
        action="consent.record",
        request=request,
        patient_id=patient.pk,
        resource_type="consent",
        resource_id=str(record.id),
        fields=("kind", "status", "capture_method"),
        **actor_kwargs,  # type: ignore[arg-type]
    )
    return record


def consent_current(
    *, patient: Patient, kind: ConsentKind, at: datetime.datetime, scope: str = ""
) -> ConsentStatus | None:
    """The status that holds at `at`, or None if the patient never gave an answer.

    A granted consent whose period has ended reads as expired.
    """
    newest = (
        ConsentRecord.objects.filter(patient=patient, kind=kind, scope=scope, period_start__lte=at)
        .order_by("-captured_at", "-recorded_at")
        .values_list("status", "period_end")
        .first()
    )
    if newest is None:
        return None
    status, period_end = newest
    if period_end is not None and period_end <= at:
        return ConsentStatus.EXPIRED
    return ConsentStatus(status)


def consent_history(*, patient: Patient, kind: ConsentKind | None = None) -> list[ConsentRecord]:
    """Every record, oldest first: the ledger as the patient's history shows it."""
    records = ConsentRecord.objects.filter(patient=patient)
    if kind is not None:
        records = records.filter(Q(kind=kind))
    return list(records.order_by("captured_at", "recorded_at"))
