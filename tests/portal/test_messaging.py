"""Secure messaging: a patient writes to a team inbox, staff answer, both see receipts.

Through the services (careloop.portal.messaging, messaging_staff) and the pages
(/portal/messages/, /inbox/): who may read what (another patient 404, a staff role
without messages 403, a clinician outside her care team 404), attachments refused with
a reason (too big, a forbidden type, SVG or script) and stored encrypted, a form sent
twice writes one message, the patient's notice carries no content, read receipts,
the SLA's due time and overdue filter, assignment, close and reopen, and an audit and
timeline that never hold a subject, a body or a file name.
"""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from careloop.core import clock
from careloop.outreach.models import Message
from careloop.patients.models import Patient, TimelineEvent
from careloop.portal import messaging, messaging_staff
from careloop.portal.attachments import AttachmentRefused, Upload
from careloop.portal.models import (
    PortalAccount,
    Thread,
    ThreadAttachment,
    ThreadAttachmentChunk,
    ThreadMessage,
)
from careloop.portal.notice import NOTICE_TEMPLATE
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import add_contact, make_location, make_patient, make_provider
from tests.portal.people import ana
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

SUBJECT = "Question about my blood pressure pills"
BODY = "Since Monday my ankles are swollen after the new lisinopril dose."
ANSWER = "Please stop the new dose and come in on Thursday at 9."
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00\x00\x00\x01" * 2 + b"\x08\x02\x00\x00\x00"
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
    b"<script>alert(document.cookie)</script></svg>"
)


# --- people --------------------------------------------------------------------------------


def portal_user(patient: Patient, username: str) -> PortalAccount:
    user = staff_user(Role.PATIENT, username)
    return PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())


def signed_in(user: User) -> Client:
    return force_verified_login(Client(), user)


def ben() -> PortalAccount:
    other = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    add_contact(other, "email", "ben@example.org", verified=True, can_email=True)
    return portal_user(other, "ben-portal")


@pytest.fixture
def world() -> dict[str, Any]:
    """Ana (a portal account; Dr Chen's patient), Dr Chen, a front-desk user, and an
    admin, marketer and a clinician of another care team, who may not read her messages."""
    main = make_location("Main Street Clinic")
    chen = make_provider(main, "Dr. Maya Chen")
    lakeside = make_provider(make_location("Lakeside Clinic"), "Dr. Ike Okafor")
    patient = ana()
    patient.primary_provider = chen
    patient.save(update_fields=["primary_provider"])
    return {
        "account": portal_user(patient, "ana-portal"),
        "patient": patient,
        "clinician": staff_user(
            Role.CLINICIAN, "chen", provider=chen, first_name="Maya", last_name="Chen"
        ),
        "desk": staff_user(Role.FRONT_DESK, "desk", first_name="Dana", last_name="Okafor"),
        "admin": staff_user(Role.ADMIN, "admin"),
        "marketing": staff_user(Role.MARKETING, "marketing"),
        "outsider": staff_user(Role.CLINICIAN, "okafor", provider=lakeside),
    }


def start(account: PortalAccount, **overrides: Any) -> Thread:
    fields: dict[str, Any] = {
        "inbox": "care_team",
        "subject": SUBJECT,
        "body": BODY,
        "idempotency_key": uuid.uuid4().hex,
    }
    return messaging.thread_start(account=account, **(fields | overrides))


def post_new(client: Client, key: str = "", **fields: Any) -> Any:
    data = {"inbox": "care_team", "subject": SUBJECT, "body": BODY, "idempotency_key": key}
    return client.post("/portal/messages/new/", data | fields, secure=True)


def audit_texts() -> str:
    rows = AuditEvent.objects.values_list("resource_type", "resource_id", "fields", "action")
    return " ".join(str(row) for row in rows)


def timeline_texts(patient: Patient) -> str:
    return " ".join(TimelineEvent.objects.filter(patient=patient).values_list("summary", flat=True))


# --- the patient writes, staff answer ------------------------------------------------------


def test_a_patient_message_reaches_the_inbox_and_staff_answer_it(world: dict[str, Any]) -> None:
    patient_client = signed_in(world["account"].user)
    response = post_new(patient_client, key="k1")
    thread = Thread.objects.get(patient=world["patient"])
    assert response.status_code == 302
    assert response["Location"] == f"/portal/messages/{thread.pk}/"

    staff = signed_in(world["clinician"])
    listing = staff.get("/inbox/", secure=True).content.decode()
    assert SUBJECT in listing and "1 unread" in listing and "Alvarez" in listing

    page = staff.get(f"/inbox/{thread.pk}/", secure=True).content.decode()
    assert BODY in page
    answer = {"body": ANSWER, "idempotency_key": "s1"}
    assert staff.post(f"/inbox/{thread.pk}/", answer, secure=True).status_code == 302

    mine = patient_client.get(f"/portal/messages/{thread.pk}/", secure=True).content.decode()
    assert ANSWER in mine and "Maya Chen" in mine
    thread.refresh_from_db()
    assert thread.assigned_to == world["clinician"]  # the first to answer takes it
    assert thread.due_at is None  # answered


def test_the_inbox_marks_threads_with_unread_messages_for_the_patient(
    world: dict[str, Any],
) -> None:
    thread = start(world["account"])
    messaging_staff.staff_reply(
        actor=world["desk"], thread_id=thread.pk, body=ANSWER, idempotency_key="a"
    )
    client = signed_in(world["account"].user)

    before = client.get("/portal/messages/", secure=True).content.decode()
    client.get(f"/portal/messages/{thread.pk}/", secure=True)
    after = client.get("/portal/messages/", secure=True).content.decode()

    assert "1 new" in before and 'class="card unread"' in before
    assert "1 new" not in after and 'class="card unread"' not in after


# --- who may read what ---------------------------------------------------------------------


def test_another_patient_gets_404_for_the_thread_its_reply_and_its_files(
    world: dict[str, Any],
) -> None:
    thread = start(world["account"], uploads=[Upload(name="labs.pdf", content=PDF)])
    attachment = ThreadAttachment.objects.get()
    intruder = signed_in(ben().user)

    assert intruder.get(f"/portal/messages/{thread.pk}/", secure=True).status_code == 404
    reply = {"body": "hello", "idempotency_key": "x"}
    assert intruder.post(f"/portal/messages/{thread.pk}/", reply, secure=True).status_code == 404
    files = f"/portal/messages/files/{attachment.pk}/"
    assert intruder.get(files, secure=True).status_code == 404
    assert SUBJECT not in intruder.get("/portal/messages/", secure=True).content.decode()
    assert ThreadMessage.objects.count() == 1


def test_staff_without_the_messages_role_are_refused_and_audited(world: dict[str, Any]) -> None:
    thread = start(world["account"], uploads=[Upload(name="labs.pdf", content=PDF)])
    attachment = ThreadAttachment.objects.get()
    for role in ("admin", "marketing"):
        client = signed_in(world[role])
        for url in ("/inbox/", f"/inbox/{thread.pk}/", f"/inbox/files/{attachment.pk}/"):
            assert client.get(url, secure=True).status_code == 403, (role, url)
        answer = {"body": ANSWER, "idempotency_key": role}
        assert client.post(f"/inbox/{thread.pk}/", answer, secure=True).status_code == 403
        assert client.post(f"/inbox/{thread.pk}/close/", secure=True).status_code == 403
    assert ThreadMessage.objects.count() == 1
    assert AuditEvent.objects.filter(action="access.denied", resource_type="messages").exists()


def test_a_clinician_outside_the_care_team_gets_404(world: dict[str, Any]) -> None:
    thread = start(world["account"])
    client = signed_in(world["outsider"])

    assert SUBJECT not in client.get("/inbox/", secure=True).content.decode()
    assert client.get(f"/inbox/{thread.pk}/", secure=True).status_code == 404
    answer = {"body": ANSWER, "idempotency_key": "o"}
    assert client.post(f"/inbox/{thread.pk}/", answer, secure=True).status_code == 404


def test_staff_cannot_use_the_portal_pages(world: dict[str, Any]) -> None:
    client = signed_in(world["clinician"])
    assert client.get("/portal/messages/", secure=True).status_code == 403


# --- attachments ---------------------------------------------------------------------------


def test_an_accepted_file_is_stored_encrypted_and_served_only_as_a_download(
    world: dict[str, Any],
) -> None:
    client = signed_in(world["account"].user)
    pdf = PDF + b"% NAME-IN-FILE Ana Alvarez 1960-02-03\n"
    upload = SimpleUploadedFile("Ana lab results.pdf", pdf, content_type="application/pdf")

    response = post_new(client, key="f1", attachments=upload)

    assert response.status_code == 302
    attachment = ThreadAttachment.objects.get()
    assert attachment.content_type == "application/pdf" and attachment.size == len(pdf)
    with connection.cursor() as cursor:
        cursor.execute("SELECT data FROM portal_threadattachmentchunk")
        stored = b"".join(bytes(row[0]) for row in cursor.fetchall())
        cursor.execute("SELECT filename FROM portal_threadattachment")
        name = bytes(cursor.fetchone()[0])
    assert b"NAME-IN-FILE" not in stored and b"Ana lab" not in name

    download = client.get(f"/portal/messages/files/{attachment.pk}/", secure=True)
    assert download.status_code == 200 and download.content == pdf
    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"].startswith("attachment;")
    assert "inline" not in download["Content-Disposition"]
    assert download["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download["Content-Security-Policy"]
    staff = signed_in(world["desk"]).get(f"/inbox/files/{attachment.pk}/", secure=True)
    assert staff.status_code == 200 and staff.content == pdf
    assert AuditEvent.objects.filter(action="message.attachment_view").count() == 2


def test_a_large_file_is_stored_in_pieces_and_comes_back_whole(world: dict[str, Any]) -> None:
    content = b"line of a long glucose log\n" * 40_000  # about 1 MB: four pieces
    start(world["account"], uploads=[Upload(name="glucose.txt", content=content)])
    attachment = ThreadAttachment.objects.get()
    client = signed_in(world["account"].user)

    download = client.get(f"/portal/messages/files/{attachment.pk}/", secure=True)

    assert ThreadAttachmentChunk.objects.filter(attachment=attachment).count() == 5
    assert download.content == content
    assert download["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("drawing.svg", SVG, "SVG images are not accepted"),
        ("photo.png", SVG, "SVG images are not accepted"),
        ("page.html", b"<!doctype html><p>hi</p>", "Web pages and XML files are not accepted"),
        ("notes.txt", b"see this javascript:alert(1) link", "web page code or a script"),
        ("form.pdf", PDF.replace(b"/Type /Catalog", b"/OpenAction << /S /JavaScript >>"), "script"),
        ("form.pdf", PDF.replace(b"/Type /Catalog", b"/S /J#61vaScript"), "script"),
        ("setup.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", "not accepted"),
        ("archive.zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "not accepted"),
        ("scan.pdf", PNG, "does not match what it contains"),
        ("empty.txt", b"", "empty"),
    ],
)
def test_forbidden_files_are_refused_with_a_reason_and_nothing_is_written(
    world: dict[str, Any], name: str, content: bytes, reason: str
) -> None:
    client = signed_in(world["account"].user)
    upload = SimpleUploadedFile(name, content, content_type="image/png")

    response = post_new(client, key="bad", attachments=upload)

    page = response.content.decode()
    assert response.status_code == 200
    assert reason in page and 'role="alert"' in page
    assert BODY in page  # what was typed is kept
    assert not Thread.objects.exists() and not ThreadAttachment.objects.exists()


def test_a_pdf_hiding_script_in_a_compressed_stream_is_refused(world: dict[str, Any]) -> None:
    import zlib

    hidden = zlib.compress(b"<< /Type /Action /S /JavaScript /JS (app.alert(1)) >>")
    pdf = PDF + b"3 0 obj << /Filter /FlateDecode >>\nstream\n" + hidden + b"\nendstream\n"

    with pytest.raises(AttachmentRefused, match="attachment refused") as refused:
        start(world["account"], uploads=[Upload(name="form.pdf", content=pdf)])

    assert "script" in refused.value.reason
    assert not Thread.objects.exists()


def test_a_file_over_the_size_limit_is_refused_before_it_is_kept(
    world: dict[str, Any], settings: Any
) -> None:
    settings.PORTAL_ATTACHMENT_MAX_BYTES = 4096
    client = signed_in(world["account"].user)
    upload = SimpleUploadedFile("big.txt", b"a" * 5000, content_type="text/plain")

    response = post_new(client, key="big", attachments=upload)

    assert "larger than" in response.content.decode()
    assert not Thread.objects.exists()
    # The service refuses it too, whatever path the bytes came by.
    with pytest.raises(AttachmentRefused):
        start(world["account"], uploads=[Upload(name="big.txt", content=b"a" * 5000)])


def test_staff_reply_with_an_svg_is_refused(world: dict[str, Any]) -> None:
    thread = start(world["account"])
    client = signed_in(world["clinician"])
    upload = SimpleUploadedFile("chart.svg", SVG, content_type="image/svg+xml")

    response = client.post(
        f"/inbox/{thread.pk}/",
        {"body": ANSWER, "idempotency_key": "svg", "attachments": upload},
        secure=True,
    )

    assert (
        response.status_code == 200 and "SVG images are not accepted" in response.content.decode()
    )
    assert ThreadMessage.objects.filter(thread=thread).count() == 1


# --- one message per form ------------------------------------------------------------------


def test_a_new_message_form_submitted_twice_writes_one_message(world: dict[str, Any]) -> None:
    client = signed_in(world["account"].user)

    first = post_new(client, key="same-form")
    second = post_new(client, key="same-form")

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Thread.objects.count() == 1 and ThreadMessage.objects.count() == 1


def test_a_reply_submitted_twice_writes_one_message_on_both_sides(world: dict[str, Any]) -> None:
    thread = start(world["account"])
    patient = signed_in(world["account"].user)
    staff = signed_in(world["desk"])
    url = f"/portal/messages/{thread.pk}/"

    for _ in range(2):
        patient.post(url, {"body": "One more thing.", "idempotency_key": "r1"}, secure=True)
        staff.post(f"/inbox/{thread.pk}/", {"body": ANSWER, "idempotency_key": "s1"}, secure=True)

    assert ThreadMessage.objects.filter(thread=thread).count() == 3
    assert Message.objects.filter(template_id=NOTICE_TEMPLATE).count() == 1


def test_the_same_key_from_another_person_is_another_message(world: dict[str, Any]) -> None:
    start(world["account"], idempotency_key="shared")
    start(ben(), idempotency_key="shared")
    assert Thread.objects.count() == 2


# --- the patient's notice ------------------------------------------------------------------


def test_a_staff_reply_enqueues_a_notice_without_content(world: dict[str, Any]) -> None:
    thread = start(world["account"])
    assert not Message.objects.filter(template_id=NOTICE_TEMPLATE).exists()  # patient wrote

    posted = messaging_staff.staff_reply(
        actor=world["clinician"], thread_id=thread.pk, body=ANSWER, idempotency_key="n"
    )

    notice = Message.objects.get(template_id=NOTICE_TEMPLATE, patient=world["patient"])
    assert notice.channel == "email"  # her preferred (only) channel
    assert notice.idempotency_key == f"portal-notice-{posted.pk.hex}"
    text = f"{notice.subject} {notice.body} {notice.body_html}"
    assert "new secure message" in text
    for secret in (ANSWER, SUBJECT, "lisinopril", "Thursday"):
        assert secret not in text


# --- read receipts -------------------------------------------------------------------------


def test_read_receipts_show_on_both_sides(world: dict[str, Any]) -> None:
    thread = start(world["account"])
    patient = signed_in(world["account"].user)
    staff = signed_in(world["clinician"])
    portal_url, inbox_url = f"/portal/messages/{thread.pk}/", f"/inbox/{thread.pk}/"

    assert "Not read yet" in patient.get(portal_url, secure=True).content.decode()
    staff.get(inbox_url, secure=True)  # staff open it: the patient's message is read
    assert "Read by the practice" in patient.get(portal_url, secure=True).content.decode()

    staff.post(inbox_url, {"body": ANSWER, "idempotency_key": "r"}, secure=True)
    assert "Not read by the patient yet" in staff.get(inbox_url, secure=True).content.decode()
    patient.get(portal_url, secure=True)
    assert "Read by the patient" in staff.get(inbox_url, secure=True).content.decode()
    answer = ThreadMessage.objects.get(author_kind="staff")
    assert answer.read_at is not None


# --- SLA, assignment, close and reopen -----------------------------------------------------


def test_the_answer_is_due_in_business_days_and_the_inbox_shows_overdue(
    world: dict[str, Any],
) -> None:
    friday_afternoon = datetime.datetime(2026, 6, 12, 20, 0, tzinfo=datetime.UTC)  # 3 pm Chicago
    with clock.frozen(friday_afternoon):
        late = start(world["account"], subject="Billing question", inbox="billing")
        soon = start(world["account"], subject="Refill", inbox="care_team")
    assert soon.due_at == datetime.datetime(2026, 6, 15, 20, 0, tzinfo=datetime.UTC)  # Monday
    assert late.due_at == datetime.datetime(2026, 6, 16, 20, 0, tzinfo=datetime.UTC)  # Tuesday

    staff = signed_in(world["desk"])
    with clock.frozen(datetime.datetime(2026, 6, 16, 12, 0, tzinfo=datetime.UTC)):
        overdue = staff.get("/inbox/?show=overdue", secure=True).content.decode()
        everything = staff.get("/inbox/", secure=True).content.decode()
    assert "Refill" in overdue and "Billing question" not in overdue
    assert everything.count("Overdue</span>") == 1


def test_a_saturday_message_is_due_from_monday(world: dict[str, Any]) -> None:
    saturday = datetime.datetime(2026, 6, 13, 15, 0, tzinfo=datetime.UTC)
    due = messaging.due_after(saturday, 1)
    assert due == datetime.datetime(2026, 6, 16, 5, 0, tzinfo=datetime.UTC)  # Tue 00:00 CDT


def test_assign_close_and_reopen_are_audited_and_on_the_timeline_without_content(
    world: dict[str, Any],
) -> None:
    thread = start(world["account"], uploads=[Upload(name="Ana-Alvarez-labs.pdf", content=PDF)])
    staff = signed_in(world["desk"])
    url = f"/inbox/{thread.pk}/"

    staff.post(url + "assign/", {"assignee": world["clinician"].pk}, secure=True)
    thread.refresh_from_db()
    assert thread.assigned_to == world["clinician"]
    mine = signed_in(world["clinician"]).get("/inbox/?show=mine", secure=True).content.decode()
    assert SUBJECT in mine
    unassigned = staff.get("/inbox/?show=unassigned", secure=True).content.decode()
    assert SUBJECT not in unassigned
    # Someone who does not answer messages cannot be given a thread.
    staff.post(url + "assign/", {"assignee": world["admin"].pk}, secure=True)
    thread.refresh_from_db()
    assert thread.assigned_to == world["clinician"]

    staff.post(url + "close/", secure=True)
    thread.refresh_from_db()
    assert thread.status == "closed" and thread.closed_at is not None and thread.due_at is None
    assert SUBJECT in staff.get("/inbox/?show=closed", secure=True).content.decode()
    closed = signed_in(world["account"].user).post(
        f"/portal/messages/{thread.pk}/", {"body": "Hello?", "idempotency_key": "c"}, secure=True
    )
    assert "This conversation is closed" in closed.content.decode()

    staff.post(url + "reopen/", secure=True)
    thread.refresh_from_db()
    assert thread.status == "open" and thread.due_at is not None  # the patient wrote last

    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"message.thread_start", "message.assign", "message.close", "message.reopen"} <= actions
    assert {"message.view", "message.list"} <= actions
    timeline = timeline_texts(world["patient"])
    assert "Secure message received (care team)" in timeline
    assert "closed" in timeline and "reopened" in timeline
    for secret in (SUBJECT, BODY, "Ana-Alvarez", "lisinopril"):
        assert secret not in timeline and secret not in audit_texts()


def test_bad_input_answers_with_a_reason_not_an_error(world: dict[str, Any]) -> None:
    client = signed_in(world["account"].user)

    no_body = post_new(client, key="e1", body="   ")
    no_inbox = post_new(client, key="e2", inbox="the-ceo")
    too_long = post_new(client, key="e3", subject="x" * 201)

    assert "Write your message." in no_body.content.decode()
    assert "Choose who your message is for." in no_inbox.content.decode()
    assert "The subject is too long" in too_long.content.decode()
    assert not Thread.objects.exists()


def test_the_portal_pages_speak_spanish(world: dict[str, Any]) -> None:
    thread = start(world["account"])
    client = signed_in(world["account"].user)

    inbox = client.get("/portal/messages/?lang=es", secure=True).content.decode()
    page = client.get(f"/portal/messages/{thread.pk}/", secure=True).content.decode()
    new = client.get("/portal/messages/new/", secure=True).content.decode()

    assert "Mensajes" in inbox and "Mensaje nuevo" in inbox
    assert "Aún no se ha leído" in page and "Responder" in page
    assert "Asunto" in new and "Equipo de atención" in new


def test_every_input_of_the_message_forms_has_a_label(world: dict[str, Any]) -> None:
    thread = start(world["account"])
    client = signed_in(world["account"].user)
    for url in ("/portal/messages/new/", f"/portal/messages/{thread.pk}/"):
        page = client.get(url, secure=True).content.decode()
        controls = re.findall(
            r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page
        )
        assert controls
        for control in controls:
            assert f'<label for="{control}">' in page, (url, control)
        assert "<script" not in page
