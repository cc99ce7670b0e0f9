"""Staff work on the EHR feeds' two queues: the quarantine and the match reviews.

The quarantine's rows (file, line, type, reason) hold no PHI and are the integration
resource's; an item's payload is the raw resource, so showing it is a PHI read, for an
unscoped role that may read clinical data, and audited (`ehr.quarantine_view`). A match
review shows two patients side by side (audited `ehr.match_view` for each) and is
decided by someone who may write demographics: merge (careloop.patients.merge) or
"different people" (`ehr.match_decide`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db import transaction
from django.http import HttpRequest

from careloop.core.clock import now
from careloop.core.errors import NotFound, PermissionDenied
from careloop.ehr import ingest
from careloop.ehr.models import (
    ImportRun,
    MatchReview,
    MatchStatus,
    QuarantineItem,
    QuarantineStatus,
    SourceRecord,
)
from careloop.patients.merge import patient_merge
from careloop.patients.models import Patient
from careloop.security.audit import audit_record
from careloop.security.permissions import (
    SCOPED_ROLES,
    Actor,
    Op,
    Resource,
    actor_allowed,
    require,
)
from careloop.security.scope import patient_scope

PAGE_SIZE = 50
# What the review page shows of each patient, as the audit log records it.
MATCH_FIELDS = ("name", "birth_date", "sex", "address", "contact_points", "identifiers")


class AlreadyDecided(ValueError):
    """The item or review was closed by someone else meanwhile (the message is safe)."""


# --- the quarantine ---------------------------------------------------------------------


def quarantine_list(
    *,
    actor: Actor,
    status: str = QuarantineStatus.OPEN,
    source_id: int | None = None,
    page: int = 1,
) -> Page[QuarantineItem]:
    """Newest first; `status` "" for every status. Rows carry no payload."""
    require(actor, Op.READ, Resource.INTEGRATION)
    items = QuarantineItem.objects.select_related("source").defer("payload")
    if status:
        items = items.filter(status=status)
    if source_id is not None:
        items = items.filter(source_id=source_id)
    return Paginator(items.order_by("-created_at", "-id"), PAGE_SIZE).get_page(page)


def quarantine_get(*, actor: Actor, item_id: uuid.UUID) -> QuarantineItem:
    """One item without its payload; `NotFound` when there is none."""
    require(actor, Op.READ, Resource.INTEGRATION)
    item = (
        QuarantineItem.objects.select_related("source", "run", "resolved_by")
        .defer("payload")
        .filter(pk=item_id)
        .first()
    )
    if item is None:
        raise NotFound
    return item


def may_see_payloads(actor: Actor) -> bool:
    """A payload is raw clinical data about any patient: only an unscoped role that
    may read clinical data sees it (a clinician's access is her care team's)."""
    return (
        actor_allowed(actor, Op.READ, Resource.INTEGRATION)
        and actor_allowed(actor, Op.READ, Resource.CLINICAL)
        and getattr(actor, "role", "") not in SCOPED_ROLES
    )


def quarantine_payload(
    *, actor: Actor, item_id: uuid.UUID, request: HttpRequest | None = None
) -> str:
    """The quarantined item as it came, audited as `ehr.quarantine_view`."""
    require(actor, Op.READ, Resource.INTEGRATION, request=request)
    if not may_see_payloads(actor):
        audit_record(
            action="access.denied",
            request=request,
            actor=actor,
            resource_type="QuarantineItem",
            resource_id=str(item_id),
            fields=("payload",),
            outcome="denied",
        )
        raise PermissionDenied("this role may not see quarantined payloads")
    with transaction.atomic():
        item = QuarantineItem.objects.only("id", "payload").filter(pk=item_id).first()
        if item is None:
            raise NotFound
        audit_record(
            action="ehr.quarantine_view",
            request=request,
            actor=actor,
            resource_type="QuarantineItem",
            resource_id=str(item.pk),
            fields=("payload",),
        )
        payload: str = item.payload
        return payload


def quarantine_dismiss(*, actor: Actor, item_id: uuid.UUID, reason: str) -> QuarantineItem:
    """Close an open item that will not be re-processed; the reason a person typed is
    kept encrypted with the audit event (`ehr.quarantine_resolve`)."""
    user = require(actor, Op.WRITE, Resource.INTEGRATION)
    if not reason.strip():
        raise ValueError("Say why the item is dismissed.")
    with transaction.atomic():
        item = (
            QuarantineItem.objects.select_for_update().defer("payload").filter(pk=item_id).first()
        )
        if item is None:
            raise NotFound
        if item.status != QuarantineStatus.OPEN:
            raise AlreadyDecided("This item was already closed.")
        item.status = QuarantineStatus.DISMISSED
        item.resolved_at = now()
        item.resolved_by = user
        item.save(update_fields=["status", "resolved_at", "resolved_by"])
        audit_record(
            action="ehr.quarantine_resolve",
            actor=user,
            resource_type="QuarantineItem",
            resource_id=str(item.pk),
            fields=("dismissed",),
            reason=reason.strip(),
        )
    return item


def quarantine_reprocess(*, actor: Actor, item_ids: Sequence[uuid.UUID]) -> ImportRun | None:
    """Run open items through the import again (after a fix); the last run, or None
    when none of the items was open. Items that fail again are closed and their new
    reason is a new item (careloop.ehr.ingest.reprocess)."""
    user = require(actor, Op.WRITE, Resource.INTEGRATION)
    wanted = list(
        QuarantineItem.objects.filter(pk__in=item_ids, status=QuarantineStatus.OPEN).values_list(
            "pk", flat=True
        )
    )
    if not wanted:
        return None
    run = ingest.reprocess_quarantine(item_ids=wanted)
    with transaction.atomic():
        QuarantineItem.objects.filter(pk__in=wanted, resolved_by__isnull=True).exclude(
            status=QuarantineStatus.OPEN
        ).update(resolved_by=user)
        audit_record(
            action="ehr.quarantine_resolve",
            actor=user,
            resource_type="import_run",
            resource_id=str(run.pk) if run else "",
            fields=("reprocessed",),
        )
    return run


# --- match reviews ----------------------------------------------------------------------


def match_reviews_list(
    *, actor: Actor, status: str = MatchStatus.OPEN, page: int = 1
) -> Page[MatchReview]:
    """Newest first. Rows name no patient (source, reason in field names, dates)."""
    require(actor, Op.WRITE, Resource.DEMOGRAPHICS)
    reviews = MatchReview.objects.select_related("source", "decided_by")
    if status:
        reviews = reviews.filter(status=status)
    return Paginator(reviews.order_by("-created_at", "-id"), PAGE_SIZE).get_page(page)


@dataclass(frozen=True)
class MatchView:
    review: MatchReview
    incoming: Patient
    candidate: Patient


def match_review_get(
    *, actor: Actor, review_id: int, request: HttpRequest | None = None
) -> MatchView:
    """The review with both patients' details, audited (`ehr.match_view`) for each."""
    require(actor, Op.WRITE, Resource.DEMOGRAPHICS, request=request)
    review = MatchReview.objects.select_related("source", "decided_by").filter(pk=review_id).first()
    if review is None:
        raise NotFound
    visible = Patient.objects.filter(patient_scope(actor)).prefetch_related(
        "contact_points", "identifiers"
    )
    found = {p.pk: p for p in visible.filter(pk__in=[review.incoming_id, review.candidate_id])}
    if len(found) != 2:
        raise NotFound
    with transaction.atomic():
        for patient_id in (review.incoming_id, review.candidate_id):
            audit_record(
                action="ehr.match_view",
                request=request,
                actor=actor,
                patient_id=patient_id,
                resource_type="MatchReview",
                resource_id=str(review.pk),
                fields=MATCH_FIELDS,
            )
    return MatchView(review, found[review.incoming_id], found[review.candidate_id])


def match_review_decide(*, actor: Actor, review_id: int, same_person: bool) -> MatchReview:
    """Merge the incoming record into the one careloop had, or mark them as two people.

    A merge also moves the source's memory of the incoming record (its source records)
    to the survivor, so the feed's next message lands there.
    """
    user = require(actor, Op.WRITE, Resource.DEMOGRAPHICS)
    with transaction.atomic():
        review = MatchReview.objects.select_for_update().filter(pk=review_id).first()
        if review is None:
            raise NotFound
        if review.status != MatchStatus.OPEN:
            raise AlreadyDecided("This review was already decided.")
        if same_person:
            patient_merge(
                actor=user, survivor_id=review.candidate_id, duplicate_id=review.incoming_id
            )
            _follow_merge(review.incoming_id, review.candidate_id)
        review.status = MatchStatus.MERGED if same_person else MatchStatus.DISTINCT
        review.decided_at = now()
        review.decided_by = user
        review.save(update_fields=["status", "decided_at", "decided_by"])
        for patient_id in (review.incoming_id, review.candidate_id):
            audit_record(
                action="ehr.match_decide",
                actor=user,
                patient_id=patient_id,
                resource_type="MatchReview",
                resource_id=str(review.pk),
                fields=(str(review.status),),
            )
    return review


def _follow_merge(duplicate_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    SourceRecord.objects.filter(patient_id=duplicate_id).update(patient_id=survivor_id)
    SourceRecord.objects.filter(resource_type="Patient", target_id=duplicate_id).update(
        target_id=survivor_id
    )
