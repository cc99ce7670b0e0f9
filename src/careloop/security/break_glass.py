"""Break-the-glass: emergency access to one patient outside the actor's scope.

A clinician (whose patients are scoped: careloop.security.scope) types why she needs
a record outside her care team; a grant then opens that patient to her for
`GRANT_MINUTES`, and an `access.break_glass` audit event
carries the reason (stored encrypted, like the grant's copy). Grants are never revoked
or edited: they expire, and the auditor's report lists every one.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest

from careloop.core import clock
from careloop.core.errors import NotFound
from careloop.patients.models import Patient
from careloop.security.audit import audit_record
from careloop.security.models import BreakGlassGrant, User
from careloop.security.permissions import Actor, Op, Resource, require

GRANT_MINUTES = 60
# Long enough that "emergency" alone is not a reason; the reviewer needs a sentence.
REASON_MIN_LENGTH = 15
REASON_MAX_LENGTH = 1000
REPORT_PAGE_SIZE = 50


class ReasonRefused(ValueError):
    """The typed reason is too short or too long to justify emergency access."""


def _clean_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if len(text) < REASON_MIN_LENGTH:
        raise ReasonRefused(f"give a reason of at least {REASON_MIN_LENGTH} characters")
    if len(text) > REASON_MAX_LENGTH:
        raise ReasonRefused(f"keep the reason under {REASON_MAX_LENGTH} characters")
    return text


@transaction.atomic
def _grant_or_audit_failure(
    *, user: User, patient_id: uuid.UUID, reason: str, request: HttpRequest | None
) -> BreakGlassGrant | None:
    patient = Patient.objects.filter(pk=patient_id).only("id").first()
    if patient is None:
        # Audited too: emergency access attempted for an id that names no patient.
        audit_record(
            action="access.break_glass",
            request=request,
            actor=user,
            patient_id=patient_id,
            resource_type="patient",
            outcome="failure",
            reason=reason,
        )
        return None
    at = clock.now()
    grant = BreakGlassGrant(
        user=user,
        patient=patient,
        reason=reason,
        granted_at=at,
        expires_at=at + datetime.timedelta(minutes=GRANT_MINUTES),
    )
    grant.save(force_insert=True)
    audit_record(
        action="access.break_glass",
        request=request,
        actor=user,
        patient_id=patient.id,
        resource_type="break_glass_grant",
        resource_id=str(grant.id),
        reason=reason,
    )
    return grant


def break_glass_grant(
    *, actor: Actor, patient_id: uuid.UUID, reason: str, request: HttpRequest | None = None
) -> BreakGlassGrant:
    """Open `patient_id` to `actor` for `GRANT_MINUTES`, audited with the typed `reason`.

    `ReasonRefused` for a reason too short or too long, `PermissionDenied` for a role that
    may not read clinical data, `NotFound` (after auditing the attempt) for an id that
    names no patient.
    """
    # Outside the transaction below, so that the audited refusal is not rolled back.
    user = require(actor, Op.READ, Resource.CLINICAL, request=request, patient_id=patient_id)
    text = _clean_reason(reason)
    grant = _grant_or_audit_failure(user=user, patient_id=patient_id, reason=text, request=request)
    if grant is None:
        raise NotFound
    return grant


@dataclass(frozen=True)
class GrantRow:
    id: uuid.UUID
    username: str
    role: str
    patient_id: uuid.UUID
    reason: str
    granted_at: datetime.datetime
    expires_at: datetime.datetime
    active: bool


@dataclass(frozen=True)
class GrantReport:
    rows: list[GrantRow]
    number: int
    num_pages: int
    total: int


def break_glass_report(
    *, actor: Actor, page: int | str | None = 1, request: HttpRequest | None = None
) -> GrantReport:
    """Every grant, newest first, with its reason: for the auditor's review.

    Patients appear by id only (an auditor reads the audit log, not the directory).
    Reading the report is itself audited, since it shows the typed reasons.
    """
    require(actor, Op.READ, Resource.AUDIT, request=request)
    grants = BreakGlassGrant.objects.select_related("user").order_by("-granted_at", "id")
    paginator = Paginator(grants, REPORT_PAGE_SIZE)
    current = paginator.get_page(page)
    at = clock.now()
    rows = [
        GrantRow(
            id=grant.id,
            username=grant.user.username,
            role=grant.user.get_role_display(),
            patient_id=grant.patient_id,
            reason=grant.reason,
            granted_at=grant.granted_at,
            expires_at=grant.expires_at,
            active=grant.expires_at > at,
        )
        for grant in current.object_list
    ]
    audit_record(
        action="audit.search",
        request=request,
        actor=actor,
        resource_type="break_glass_grant",
        fields=("reason",),
    )
    return GrantReport(
        rows=rows, number=current.number, num_pages=paginator.num_pages, total=paginator.count
    )
