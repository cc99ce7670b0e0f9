"""Relationship notes: encrypted free text, authored, editable only by the author.

A note's every version is kept (`PatientNoteRevision`, the first included), so an edit
never silently replaces what a colleague may already have read. The timeline says that
a note was added or edited, never what it says.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction

from careloop.core.clock import now
from careloop.core.errors import NotFound, PermissionDenied
from careloop.patients.contacts import writable_patient
from careloop.patients.models import PatientNote, PatientNoteRevision, TimelineKind
from careloop.patients.selectors import patient_get
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Actor, Op, Resource, require

MAX_NOTE_LENGTH = 10_000


@dataclass(frozen=True)
class NoteView:
    """A note as the page shows it: the current text and every version, newest first."""

    note: PatientNote
    revisions: list[PatientNoteRevision]
    editable: bool

    @property
    def edited(self) -> bool:
        return len(self.revisions) > 1


def _record(
    user: User, note: PatientNote, *, action: str, summary: str, revision: PatientNoteRevision
) -> None:
    timeline_add(
        patient=note.patient,
        kind=TimelineKind.NOTE,
        summary=summary,
        actor=user,
        ref_type="patient_note",
        ref_id=str(note.pk),
    )
    audit_record(
        action=action,
        actor=user,
        patient_id=note.patient_id,
        resource_type="PatientNote",
        resource_id=f"{note.pk}:revision={revision.pk}",
        fields=["body"],
    )


def note_add(*, actor: Actor, patient_id: uuid.UUID, body: str) -> PatientNote:
    user, patient = writable_patient(actor, patient_id, Resource.NOTES)
    with transaction.atomic():
        at = now()
        note = PatientNote(patient=patient, author=user, created_at=at, updated_at=at, body=body)
        note.save()
        revision = PatientNoteRevision(note=note, body=body, edited_at=at, editor=user)
        revision.save()
        _record(user, note, action="patient.note_add", summary="Note added", revision=revision)
        return note


def _note(user: User, patient_id: uuid.UUID, note_id: uuid.UUID, *, lock: bool) -> PatientNote:
    """The patient's note; `NotFound` when it is missing or not this patient's."""
    patient = patient_get(actor=user, patient_id=patient_id)
    notes = PatientNote.objects.filter(patient=patient)
    try:
        return (notes.select_for_update() if lock else notes).get(pk=note_id)
    except PatientNote.DoesNotExist:
        raise NotFound from None


def note_get_own(*, actor: Actor, patient_id: uuid.UUID, note_id: uuid.UUID) -> PatientNote:
    """The note when the actor wrote it. Anyone else gets `PermissionDenied`, audited:
    seeing a note does not make it yours to reword.

    Call it outside the write's transaction, so that the refusal's audit event is not
    rolled back with it (a note's author never changes, so the check stays true).
    """
    user = require(actor, Op.WRITE, Resource.NOTES, patient_id=patient_id)
    note = _note(user, patient_id, note_id, lock=False)
    if note.author_id != user.pk:
        audit_record(
            action="access.denied",
            actor=user,
            patient_id=note.patient_id,
            resource_type="PatientNote",
            resource_id=str(note.pk),
            fields=["write"],
            outcome="denied",
        )
        raise PermissionDenied("only a note's author may edit it")
    return note


def note_edit(*, actor: Actor, patient_id: uuid.UUID, note_id: uuid.UUID, body: str) -> PatientNote:
    """Replace the note's text with a new version, keeping every earlier one."""
    note_get_own(actor=actor, patient_id=patient_id, note_id=note_id)
    user = require(actor, Op.WRITE, Resource.NOTES, patient_id=patient_id)
    with transaction.atomic():
        note = _note(user, patient_id, note_id, lock=True)
        if note.body == body:
            return note
        at = now()
        note.body = body
        note.updated_at = at
        note.save(update_fields=["body", "updated_at"])
        revision = PatientNoteRevision(note=note, body=body, edited_at=at, editor=user)
        revision.save()
        _record(user, note, action="patient.note_edit", summary="Note edited", revision=revision)
    return note


def notes_list(*, actor: Actor, patient_id: uuid.UUID) -> list[NoteView]:
    """The patient's notes, newest first, each with its history. An audited read."""
    user = require(actor, Op.READ, Resource.NOTES, patient_id=patient_id)
    patient = patient_get(actor=user, patient_id=patient_id)
    notes = (
        PatientNote.objects.filter(patient=patient)
        .select_related("author")
        .prefetch_related("revisions__editor")
    )
    views = [
        NoteView(
            note=note, revisions=list(note.revisions.all()), editable=note.author_id == user.pk
        )
        for note in notes
    ]
    audit_record(
        action="patient.notes_view",
        actor=user,
        patient_id=patient.pk,
        resource_type="PatientNote",
        resource_id=f"shown={len(views)}",
        fields=["body", "history"],
    )
    return views
