"""Relationship notes: list (newest first), add, read one, and edit by the author.

Through careloop.patients.notes: the service checks role and scope, keeps every
version, audits and adds the timeline entry. Only a note's author may edit it: anyone
else gets a 403 problem (and an `access.denied` audit event, written by the service
before any transaction of ours opens, so that it is not rolled back with the refusal).
A note's ETag is keyed on its id and `updated_at`, which every edit moves.
"""

# No `from __future__ import annotations`: django-ninja reads the endpoint's parameter
# types at import time, through the permission wrapper, and needs them as real objects.

import datetime
import uuid
from typing import Annotated

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from pydantic import Field, StrictStr

from careloop.api.auth import api_user, endpoint_permission
from careloop.api.concurrency import etag_of, require_if_match, set_etag
from careloop.api.paging import PageQuery, micros, paginate
from careloop.api.schemas import ClosedInput
from careloop.core.errors import NotFound
from careloop.patients.models import PatientNote
from careloop.patients.notes import (
    MAX_NOTE_LENGTH,
    NoteView,
    note_add,
    note_edit,
    note_get_own,
    notes_list,
)
from careloop.security.audit import audit_record
from careloop.security.permissions import Op, Resource

router = Router(tags=["notes"])

NoteBody = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NOTE_LENGTH)]


class NoteItem(Schema):
    id: uuid.UUID
    body: str
    author: str = Field(description="The author's username.")
    created_at: datetime.datetime
    updated_at: datetime.datetime
    edited: bool
    editable: bool = Field(description="Whether the caller wrote it (and so may edit it).")


class NotePage(Schema):
    items: list[NoteItem]
    next_cursor: str | None


class NoteIn(ClosedInput):
    body: NoteBody


class NoteFilter(Schema):
    mine: bool | None = Field(default=None, description="Only notes the caller wrote.")


def note_etag(note: PatientNote) -> str:
    return etag_of([str(note.id), note.updated_at.isoformat()])


def _item(view: NoteView) -> NoteItem:
    note = view.note
    return NoteItem(
        id=note.id,
        body=note.body,
        author=note.author.username,
        created_at=note.created_at,
        updated_at=note.updated_at,
        edited=view.edited,
        editable=view.editable,
    )


def _audit_read(request: HttpRequest, patient_id: uuid.UUID, ref: str) -> None:
    audit_record(
        action="api.read",
        request=request,
        patient_id=patient_id,
        resource_type="PatientNote",
        resource_id=ref,
        fields=list(NoteItem.model_fields),
    )


def _view_of(request: HttpRequest, patient_id: uuid.UUID, note_id: uuid.UUID) -> NoteView:
    for view in notes_list(actor=api_user(request), patient_id=patient_id):
        if view.note.id == note_id:
            return view
    raise NotFound


@router.get(
    "/patients/{patient_id}/notes", response=NotePage, summary="The patient's notes, newest first"
)
@endpoint_permission((Op.READ, Resource.NOTES))
@transaction.atomic
def notes_index(
    request: HttpRequest,
    patient_id: uuid.UUID,
    page: PageQuery,
    filters: Query[NoteFilter],
) -> NotePage:
    views = notes_list(actor=api_user(request), patient_id=patient_id)
    if filters.mine is not None:
        views = [v for v in views if v.editable == filters.mine]
    shown, cursor = paginate(
        views,
        key=lambda v: (micros(v.note.created_at), str(v.note.id)),
        params=page,
        newest_first=True,
    )
    _audit_read(request, patient_id, f"shown={len(shown)}")
    return NotePage(items=[_item(v) for v in shown], next_cursor=cursor)


@router.post("/patients/{patient_id}/notes", response={201: NoteItem}, summary="Add a note")
@endpoint_permission((Op.WRITE, Resource.NOTES))
@transaction.atomic
def note_create(
    request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID, body: NoteIn
) -> Status[NoteItem]:
    note = note_add(actor=api_user(request), patient_id=patient_id, body=body.body)
    set_etag(response, note_etag(note))
    return Status(201, _item(NoteView(note=note, revisions=[], editable=True)))


@router.get(
    "/patients/{patient_id}/notes/{note_id}",
    response=NoteItem,
    summary="One note, with its ETag",
)
@endpoint_permission((Op.READ, Resource.NOTES))
@transaction.atomic
def note_read(
    request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID, note_id: uuid.UUID
) -> NoteItem:
    view = _view_of(request, patient_id, note_id)
    _audit_read(request, patient_id, str(note_id))
    set_etag(response, note_etag(view.note))
    return _item(view)


@router.patch(
    "/patients/{patient_id}/notes/{note_id}",
    response=NoteItem,
    summary="Edit a note you wrote (needs If-Match); the earlier text is kept",
)
@endpoint_permission((Op.WRITE, Resource.NOTES))
def note_change(
    request: HttpRequest,
    response: HttpResponse,
    patient_id: uuid.UUID,
    note_id: uuid.UUID,
    body: NoteIn,
) -> NoteItem:
    user = api_user(request)
    # Outside the transaction: a refusal's `access.denied` event must survive it.
    note_get_own(actor=user, patient_id=patient_id, note_id=note_id)
    with transaction.atomic():
        current = PatientNote.objects.select_for_update().get(pk=note_id, patient_id=patient_id)
        require_if_match(request, note_etag(current))
        note = note_edit(actor=user, patient_id=patient_id, note_id=note_id, body=body.body)
        view = NoteView(note=note, revisions=list(note.revisions.all()), editable=True)
    set_etag(response, note_etag(note))
    return _item(view)
