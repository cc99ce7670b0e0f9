"""Versioned consent documents: publish a version, find the current one, and who owes
an acknowledgement.

Publishing writes one row and nothing per patient: whether a patient must
(re-)acknowledge is read at the moment asked, by comparing the document version of
their newest grant with the current version (`consent_needs`).
"""

from __future__ import annotations

import datetime
import hashlib
import uuid

from django.db import transaction

from careloop.consent.models import ConsentDocument, ConsentKind, ConsentRecord, ConsentStatus
from careloop.core.clock import now
from careloop.patients.models import Patient
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.models import User
from careloop.security.permissions import Op, Resource, require


class DocumentError(ValueError):
    """A document that cannot be published, with what to change."""


def document_sha256(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


@transaction.atomic
def consent_document_publish(
    *,
    actor: User | None,
    kind: ConsentKind,
    version: str,
    title: str,
    body: str,
    requires_acknowledgement: bool,
) -> ConsentDocument:
    """Publish a new version. `actor` None is the console (`careloop consent publish`);
    a signed-in user must be allowed to change configuration (admin)."""
    if actor is not None:
        require(actor, Op.WRITE, Resource.CONFIG)
    version, title = version.strip(), title.strip()
    if not version or not title or not body.strip():
        raise DocumentError("a document needs a version label, a title and a body")
    if ConsentDocument.objects.filter(kind=kind, version=version).exists():
        raise DocumentError(f"{kind} version {version} is already published; use a new label")
    document = ConsentDocument.objects.create(
        id=uuid.uuid4(),
        kind=kind,
        version=version,
        title=title,
        body=body,
        body_sha256=document_sha256(body),
        published_at=now(),
        requires_acknowledgement=requires_acknowledgement,
        published_by=actor,
    )
    audit_record(
        actor=actor if actor is not None else console_actor(),
        action="consent.document_publish",
        resource_type="consent_document",
        resource_id=str(document.id),
        fields=("kind", "version"),
    )
    return document


def consent_document_current(
    *, kind: str, at: datetime.datetime | None = None
) -> ConsentDocument | None:
    """The newest version of `kind` published by `at` (now), or None if there is none."""
    return (
        ConsentDocument.objects.filter(kind=kind, published_at__lte=at or now())
        .order_by("-published_at")
        .first()
    )


def consent_documents_current(*, at: datetime.datetime) -> list[ConsentDocument]:
    """The current version of every kind that has one."""
    current: dict[str, ConsentDocument] = {}
    for document in ConsentDocument.objects.filter(published_at__lte=at).order_by(
        "kind", "-published_at"
    ):
        current.setdefault(document.kind, document)
    return list(current.values())


def consent_needs(*, patient: Patient, at: datetime.datetime) -> list[ConsentDocument]:
    """Required documents whose current version the patient has not granted.

    Only the newest record of each kind counts: a grant of the current version that was
    later revoked is owed again.
    """
    needs = []
    for document in consent_documents_current(at=at):
        if not document.requires_acknowledgement:
            continue
        newest = (
            ConsentRecord.objects.filter(
                patient=patient, kind=document.kind, scope="", period_start__lte=at
            )
            .order_by("-captured_at", "-recorded_at")
            .values_list("status", "document_sha256", "period_end")
            .first()
        )
        if newest is None:
            needs.append(document)
            continue
        status, sha, period_end = newest
        lapsed = period_end is not None and period_end <= at
        if status != ConsentStatus.GRANTED or sha != document.body_sha256 or lapsed:
            needs.append(document)
    return needs
