"""The consent ledger: append a record, read the current state.

Records are never edited. `consent_record` appends one (with its audit event, in one
transaction); `consent_current` answers "what holds for this patient, kind and scope at
this moment" from the newest record whose period covers it.
"""

from __future__ import annotations

import datetime
import uuid

from django.db import transaction
from django.db.models import Q

from careloop.consent.models import (
    CaptureMethod,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
)
from careloop.core.clock import now
from careloop.patients.models import Patient
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
) -> ConsentRecord:
    """Append a consent record; the ledger's newest covering record is what holds."""
    at = now()
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
    )
    record.save()
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
