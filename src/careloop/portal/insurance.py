"""Insurance cards uploaded from the portal: the front and back of the card, as a JPEG
or PNG picture or a PDF, and staff seeing them.

Files are checked and kept exactly as message attachments are
(careloop.portal.attachments: content sniffing, the size limit, script refusal,
encrypted pieces in the database); a card takes only JPEG, PNG or PDF. The newest card
of a side is the current one; an upload supersedes the one before it, which stays as
history. A form carries a random key, so a form sent twice writes each side once.

The patient reads and uploads their own cards (or a proxy's: view power to see them,
schedule power to upload, careloop.portal.proxy); staff need coverage read and the
patient in their scope. Every read of a card and every upload is audited; an upload
writes a timeline entry that names the sides only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.db import transaction
from django.utils.translation import gettext as _

from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.patients.models import Coverage, CoverageStatus, Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.portal.attachments import (
    JPEG,
    PDF,
    PNG,
    AttachmentRefused,
    Upload,
    attachment_check,
    content_join,
    content_pieces,
    safe_filename,
)
from careloop.portal.models import CardSide, InsuranceCard, InsuranceCardChunk
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Actor, Op, Resource, require
from careloop.security.scope import patient_scope

CARD_TYPES = frozenset({JPEG, PNG, PDF})
SIDES = (CardSide.FRONT, CardSide.BACK)


def coverage_on_file(patient: Patient) -> Coverage | None:
    """The patient's first-ranked active coverage that has not ended, if any."""
    today = now().date()
    return (
        Coverage.objects.filter(patient=patient, status=CoverageStatus.ACTIVE)
        .exclude(period_end__lt=today)
        .order_by("rank", "id")
        .first()
    )


def card_checked(upload: Upload) -> tuple[Upload, str]:
    """The upload (its name made safe) and its sniffed type; `AttachmentRefused` with a
    reason for anything but a JPEG, PNG or PDF within the size limit."""
    named = Upload(name=safe_filename(upload.name), content=upload.content)
    content_type = attachment_check(named)
    if content_type not in CARD_TYPES:
        raise AttachmentRefused(
            _("This type of file is not accepted. Send a PDF or a PNG or JPEG picture.")
        )
    return named, content_type


def _card_store(
    *,
    patient: Patient,
    side: str,
    upload: Upload,
    content_type: str,
    user: User,
    key: str,
    coverage: Coverage | None,
) -> InsuranceCard:
    at = now()
    InsuranceCard.objects.filter(patient=patient, side=side, superseded_at__isnull=True).update(
        superseded_at=at
    )
    pieces = content_pieces(upload.content)
    card = InsuranceCard(
        id=uuid.uuid4(),
        patient=patient,
        coverage=coverage,
        side=side,
        filename=upload.name,
        content_type=content_type,
        size=len(upload.content),
        chunks=len(pieces),
        uploaded_at=at,
        uploaded_by=user,
        idempotency_key=key,
    )
    card.save(force_insert=True)
    for index, data in enumerate(pieces):
        InsuranceCardChunk(id=uuid.uuid4(), card=card, index=index, data=data).save(
            force_insert=True
        )
    return card


def _upload_record(*, user: User, patient: Patient, cards: list[InsuranceCard]) -> None:
    sides = [card.side for card in cards]
    audit_record(
        action="insurance_card.upload",
        actor=user,
        patient_id=patient.pk,
        resource_type="InsuranceCard",
        resource_id=str(cards[0].pk),
        fields=tuple(sides),
    )
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary=f"Insurance card uploaded in the portal ({', '.join(sides)})",
        actor=user,
        ref_type="InsuranceCard",
        ref_id=str(cards[0].pk),
    )


@transaction.atomic
def insurance_card_upload(
    *, user: User, patient: Patient, uploads: Mapping[str, Upload], idempotency_key: str
) -> list[InsuranceCard]:
    """Store the sides given (front, back), each replacing the current one of its side.

    Every file is checked before anything is written: one refusal refuses the upload.
    A side already stored under this form's key is not stored again."""
    sides = [side for side in SIDES if side in uploads]
    if not sides:
        raise AttachmentRefused(_("Choose a file for the front or the back of your card."))
    checked = {side: card_checked(uploads[side]) for side in sides}
    key = idempotency_key[:64]
    # One upload of a patient's cards at a time: the lock orders two tabs' uploads.
    Patient.objects.select_for_update().filter(pk=patient.pk).first()
    coverage = coverage_on_file(patient)
    cards: list[InsuranceCard] = []
    written: list[InsuranceCard] = []
    for side in sides:
        earlier = (
            InsuranceCard.objects.filter(patient=patient, side=side, idempotency_key=key).first()
            if key
            else None
        )
        if earlier is not None:
            cards.append(earlier)  # the same form again: already stored
            continue
        upload, content_type = checked[side]
        card = _card_store(
            patient=patient,
            side=side,
            upload=upload,
            content_type=content_type,
            user=user,
            key=key,
            coverage=coverage,
        )
        cards.append(card)
        written.append(card)
    if written:
        _upload_record(user=user, patient=patient, cards=written)
    return cards


def current_cards(*, patient: Patient) -> dict[str, InsuranceCard]:
    """The current card of each side on file, by side. (Metadata only: no content.)"""
    rows = InsuranceCard.objects.filter(patient=patient, superseded_at__isnull=True)
    return {row.side: row for row in rows}


def has_current_front(patient: Patient) -> bool:
    return InsuranceCard.objects.filter(
        patient=patient, side=CardSide.FRONT, superseded_at__isnull=True
    ).exists()


def card_bytes(card: InsuranceCard) -> bytes:
    pieces = [(p.index, p.data) for p in card.pieces.order_by("index")]
    return content_join(pieces, chunks=card.chunks, size=card.size, label=f"card {card.pk}")


def _card_read_audit(*, user: User, card: InsuranceCard) -> None:
    audit_record(
        action="insurance_card.view",
        actor=user,
        patient_id=card.patient_id,
        resource_type="InsuranceCard",
        resource_id=str(card.pk),
        fields=("filename", "content"),
    )


@transaction.atomic
def patient_card(
    *, user: User, patient: Patient, card_id: uuid.UUID
) -> tuple[InsuranceCard, bytes]:
    """A card of `patient` (the record the portal page acts for), decrypted; audited."""
    card = InsuranceCard.objects.filter(pk=card_id, patient=patient).first()
    if card is None:
        raise NotFound("no such card")
    _card_read_audit(user=user, card=card)
    return card, card_bytes(card)


def staff_patient(*, actor: Actor, patient_id: uuid.UUID) -> tuple[User, Patient]:
    """The patient when the actor may read coverage and has them in scope; `NotFound`
    alike for a missing patient and one out of scope."""
    user = require(actor, Op.READ, Resource.COVERAGE, patient_id=patient_id)
    patient = Patient.objects.filter(patient_scope(user), pk=patient_id).first()
    if patient is None:
        raise NotFound("no such patient")
    return user, patient


def staff_cards(*, actor: Actor, patient_id: uuid.UUID) -> tuple[Patient, list[InsuranceCard]]:
    """Every card of the patient, current ones first, newest first; the listing (names
    and dates, no content) is audited."""
    user, patient = staff_patient(actor=actor, patient_id=patient_id)
    cards = list(InsuranceCard.objects.filter(patient=patient).select_related("coverage"))
    cards.sort(key=lambda c: (c.superseded_at is not None, c.side, -c.uploaded_at.timestamp()))
    audit_record(
        action="insurance_card.view",
        actor=user,
        patient_id=patient.pk,
        resource_type="InsuranceCard",
        resource_id="list",
        fields=("filename",),
    )
    return patient, cards


@transaction.atomic
def staff_card(
    *, actor: Actor, patient_id: uuid.UUID, card_id: uuid.UUID
) -> tuple[InsuranceCard, bytes]:
    """A card of a patient in the actor's scope, decrypted; audited."""
    user, patient = staff_patient(actor=actor, patient_id=patient_id)
    card = InsuranceCard.objects.filter(pk=card_id, patient=patient).first()
    if card is None:
        raise NotFound("no such card")
    _card_read_audit(user=user, card=card)
    return card, card_bytes(card)
