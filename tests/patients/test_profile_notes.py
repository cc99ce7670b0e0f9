"""Relationship notes: encrypted, authored, editable only by their author, every version kept."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.test import Client

from careloop.core import clock
from careloop.core.errors import PermissionDenied
from careloop.patients.models import Patient, PatientNote, PatientNoteRevision, TimelineEvent
from careloop.patients.notes import note_add, note_edit, notes_list
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import make_patient, make_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

SECRET = "Prefers mornings; daughter Lucia drives her"
REWORDED = "Prefers mornings; son Mateo drives her now"


@pytest.fixture
def patient() -> Patient:
    return make_patient("Ana", "García", datetime.date(1962, 3, 14))


@pytest.fixture
def author() -> User:
    return make_user(Role.CARE_COORDINATOR, "coord.amy")


def as_user(user: User) -> Client:
    client = Client()
    force_verified_login(client, user)
    return client


def notes_url(patient: Patient) -> str:
    return f"/patients/{patient.id}/notes/"


def test_a_note_is_added_encrypted_with_its_first_version_and_a_textless_timeline_entry(
    patient: Patient, author: User
) -> None:
    client = as_user(author)
    response = client.post(notes_url(patient), {"body": SECRET}, secure=True)
    assert response.status_code == 302
    note = PatientNote.objects.get(patient=patient)
    assert (note.body, note.author) == (SECRET, author)
    raw = PatientNote.objects.values_list("body", flat=True).get()
    assert SECRET.encode() not in bytes(raw)
    assert [r.body for r in note.revisions.all()] == [SECRET]
    entry = TimelineEvent.objects.get(patient=patient)
    assert (entry.summary, entry.kind, entry.actor) == ("Note added", "note", author)
    event = AuditEvent.objects.get(action="patient.note_add")
    assert event.patient_id == patient.pk and event.fields == ["body"]
    assert "Lucia" not in f"{event.resource_id}{event.fields}"


def test_the_author_edits_a_note_and_every_version_is_kept(patient: Patient, author: User) -> None:
    note = note_add(actor=author, patient_id=patient.id, body=SECRET)
    client = as_user(author)
    form = client.get(notes_url(patient), {"edit": str(note.id)}, secure=True)
    assert form.status_code == 200 and "Lucia" in form.content.decode()
    response = client.post(
        notes_url(patient), {"note": str(note.id), "body": REWORDED}, secure=True
    )
    assert response.status_code == 302
    note.refresh_from_db()
    assert note.body == REWORDED
    assert [r.body for r in note.revisions.all()] == [REWORDED, SECRET]  # newest first
    assert list(
        TimelineEvent.objects.filter(patient=patient).values_list("summary", flat=True)
    ) == ["Note edited", "Note added"]
    assert AuditEvent.objects.filter(action="patient.note_edit").count() == 1
    page = client.get(notes_url(patient), secure=True).content.decode()
    assert "History (2 versions)" in page and "Lucia" in page and "Mateo" in page


def test_saving_the_same_text_adds_no_version(patient: Patient, author: User) -> None:
    note = note_add(actor=author, patient_id=patient.id, body=SECRET)
    note_edit(actor=author, patient_id=patient.id, note_id=note.id, body=SECRET)
    assert PatientNoteRevision.objects.filter(note=note).count() == 1


def test_someone_elses_note_cannot_be_edited_and_the_refusal_is_audited(
    patient: Patient, author: User
) -> None:
    note = note_add(actor=author, patient_id=patient.id, body=SECRET)
    client = as_user(make_user(Role.CARE_COORDINATOR, "coord.cal"))
    assert client.get(notes_url(patient), {"edit": str(note.id)}, secure=True).status_code == 403
    response = client.post(
        notes_url(patient), {"note": str(note.id), "body": "mine now"}, secure=True
    )
    assert response.status_code == 403
    # Even an empty body is refused as a 403, not answered with a form error.
    empty = client.post(notes_url(patient), {"note": str(note.id), "body": ""}, secure=True)
    assert empty.status_code == 403
    note.refresh_from_db()
    assert note.body == SECRET and note.revisions.count() == 1
    denied = AuditEvent.objects.filter(action="access.denied", resource_type="PatientNote")
    assert denied.count() == 3


def test_the_edit_service_raises_permission_denied_for_a_non_author(
    patient: Patient, author: User
) -> None:
    note = note_add(actor=author, patient_id=patient.id, body=SECRET)
    other = make_user(Role.CARE_COORDINATOR, "coord.cal")
    with pytest.raises(PermissionDenied):
        note_edit(actor=other, patient_id=patient.id, note_id=note.id, body="changed")
    # The refusal outlives the refused write's rollback.
    assert AuditEvent.objects.filter(action="access.denied", actor_id=str(other.pk)).exists()


def test_a_note_of_another_patient_is_a_404(patient: Patient, author: User) -> None:
    other = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    theirs = note_add(actor=author, patient_id=other.id, body=SECRET)
    client = as_user(author)
    data = {"note": str(theirs.id), "body": "moved"}
    assert client.post(notes_url(patient), data, secure=True).status_code == 404
    assert (
        client.post(
            notes_url(patient), {"note": str(uuid.uuid4()), "body": "x"}, secure=True
        ).status_code
        == 404
    )


def test_an_empty_note_is_a_form_error(patient: Patient, author: User) -> None:
    response = as_user(author).post(notes_url(patient), {"body": "   "}, secure=True)
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not PatientNote.objects.exists()


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.ADMIN, Role.MARKETING, Role.ANALYST])
def test_roles_without_notes_access_can_neither_read_nor_write_notes(
    patient: Patient, author: User, role: str
) -> None:
    note_add(actor=author, patient_id=patient.id, body=SECRET)
    client = as_user(make_user(role))
    assert client.get(notes_url(patient), secure=True).status_code in (403, 404)
    assert client.post(notes_url(patient), {"body": "hello"}, secure=True).status_code in (403, 404)
    assert PatientNote.objects.count() == 1
    with pytest.raises(PermissionDenied):
        notes_list(actor=make_user(role, f"{role}-2"), patient_id=patient.id)


def test_the_front_desk_does_not_see_notes_on_the_patient_page(
    patient: Patient, author: User
) -> None:
    note_add(actor=author, patient_id=patient.id, body=SECRET)
    html = as_user(make_user(Role.FRONT_DESK)).get(f"/patients/{patient.id}/", secure=True)
    assert html.status_code == 200
    text = html.content.decode()
    assert "Lucia" not in text
    assert "Note added" in text  # the timeline says a note exists, never what it says


def test_the_patient_page_shows_the_latest_notes_to_a_coordinator(
    patient: Patient, author: User
) -> None:
    note_add(actor=author, patient_id=patient.id, body=SECRET)
    text = as_user(author).get(f"/patients/{patient.id}/", secure=True).content.decode()
    assert "Lucia" in text and "coord.amy" in text


def test_reading_the_notes_page_is_audited(patient: Patient, author: User) -> None:
    note_add(actor=author, patient_id=patient.id, body=SECRET)
    as_user(author).get(notes_url(patient), secure=True)
    event = AuditEvent.objects.get(action="patient.notes_view")
    assert event.patient_id == patient.pk and event.at <= clock.now()
