"""Secure messaging between a patient (the portal) and the practice's team inboxes.

A patient starts a thread in one team inbox (`settings.PORTAL_MESSAGE_INBOXES`: code ->
answer due within N business days) and replies in it; staff of the roles that may
write messages reply, assign a thread to one of them, close and reopen it. Every write
is one service here: one transaction that also writes its audit event and a timeline
entry (coded words only: never a subject, a body or a file name).

- **Read receipts**: a message is read when the other side first opens its thread
  (`read_at`); the patient sees when the practice read theirs, staff see when the
  patient read theirs.
- **SLA**: the patient's first message that nobody has answered sets the thread's
  `due_at` (its time plus the inbox's business days, in the practice's calendar); a
  staff reply clears it. An open thread past `due_at` is overdue in the inbox.
- **Notice**: a staff reply enqueues the content-free notice on the patient's
  preferred channel (careloop.portal.notice), in the same transaction.
- **Double submit**: each form carries a random `idempotency_key`; a message is unique
  per (author, key), so the same form posted twice writes one message.
- **Who sees what**: the patient sees their own threads (`PortalAccount`); staff need
  the permission table's messages read/write, and see the threads of the patients
  in their scope (careloop.security.scope). The inbox routes work; it is not an
  access boundary (front desk, coordinators and clinicians all answer messages).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.consent.models import Purpose
from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.core.practice import practice_zone
from careloop.patients.models import TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.portal.attachments import (
    Upload,
    attachment_bytes,
    attachment_check,
    attachment_store,
    safe_filename,
)
from careloop.portal.models import (
    AuthorKind,
    PortalAccount,
    Thread,
    ThreadAttachment,
    ThreadMessage,
    ThreadStatus,
)
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Resource

SUBJECT_MAX = 200
BODY_MAX = 10_000
INBOX_LABELS: dict[str, Promise] = {
    "care_team": gettext_lazy("Care team"),
    "front_desk": gettext_lazy("Front desk"),
    "billing": gettext_lazy("Billing"),
}
# The purpose of the notice of a staff reply, by inbox (consent decides by purpose).
PURPOSE_FOR_INBOX = {"front_desk": Purpose.APPOINTMENT, "billing": Purpose.BILLING}
RESOURCE = Resource.MESSAGES


class MessageInvalid(Exception):  # noqa: N818 - bad input, with the reason to show
    def __init__(self, reason: str) -> None:
        super().__init__("message invalid")
        self.reason = reason


# --- inboxes and their SLA -----------------------------------------------------------------


def inboxes() -> dict[str, int]:
    """Inbox code -> business days within which an answer is due."""
    return dict(settings.PORTAL_MESSAGE_INBOXES)


def inbox_label(code: str) -> str:
    return str(INBOX_LABELS.get(code, code.replace("_", " ").capitalize()))


def inbox_choices() -> list[tuple[str, str]]:
    return [(code, inbox_label(code)) for code in inboxes()]


def due_after(at: datetime.datetime, business_days: int) -> datetime.datetime:
    """`at` plus `business_days` weekdays, at the same wall time in the practice's zone.

    A message on a Saturday or Sunday counts from the start of Monday.
    """
    zone = practice_zone()
    local = at.astimezone(zone)
    day, wall = local.date(), local.timetz().replace(tzinfo=None)
    while day.weekday() >= 5:
        day, wall = day + datetime.timedelta(days=1), datetime.time.min
    remaining = business_days
    while remaining > 0:
        day += datetime.timedelta(days=1)
        if day.weekday() < 5:
            remaining -= 1
    return datetime.datetime.combine(day, wall, tzinfo=zone).astimezone(datetime.UTC)


def is_overdue(thread: Thread, at: datetime.datetime | None = None) -> bool:
    return (
        thread.status == ThreadStatus.OPEN
        and thread.due_at is not None
        and thread.due_at < (at or now())
    )


# --- shared write steps --------------------------------------------------------------------


def _text(value: str, *, limit: int, missing: str, too_long: str) -> str:
    text = (value or "").strip()
    if not text:
        raise MessageInvalid(missing)
    if len(text) > limit:
        raise MessageInvalid(too_long)
    return text


def body_checked(body: str) -> str:
    return _text(
        body,
        limit=BODY_MAX,
        missing=_("Write your message."),
        too_long=_("The message is too long (at most %(n)s characters).") % {"n": BODY_MAX},
    )


def uploads_checked(uploads: Sequence[Upload]) -> list[tuple[Upload, str]]:
    """Every upload checked before anything is written: one refusal refuses the message."""
    checked = []
    for upload in uploads:
        named = Upload(name=safe_filename(upload.name), content=upload.content)
        checked.append((named, attachment_check(named)))
    return checked


def message_of_form(author: User, key: str) -> ThreadMessage | None:
    if not key:
        return None
    return (
        ThreadMessage.objects.filter(author=author, idempotency_key=key[:64])
        .select_related("thread")
        .first()
    )


def message_write(
    *,
    thread: Thread,
    kind: AuthorKind,
    author: User,
    body: str,
    key: str,
    files: list[tuple[Upload, str]],
    at: datetime.datetime,
) -> ThreadMessage:
    message = ThreadMessage(
        id=uuid.uuid4(),
        thread=thread,
        author_kind=kind,
        author=author,
        body=body,
        created_at=at,
        idempotency_key=key[:64],
    )
    message.save(force_insert=True)
    for upload, content_type in files:
        attachment_store(message=message, upload=upload, content_type=content_type)
    return message


def message_reply_once(
    *,
    thread: Thread,
    kind: AuthorKind,
    author: User,
    body: str,
    key: str,
    files: list[tuple[Upload, str]],
    at: datetime.datetime,
) -> tuple[ThreadMessage, bool]:
    """Write a reply once per form key: (the message, True), or (the twin submission's
    message, False) when a double submit of the same form won the race."""
    try:
        with transaction.atomic():  # a savepoint: a racing double submit may win
            message = message_write(
                thread=thread, kind=kind, author=author, body=body, key=key, files=files, at=at
            )
    except IntegrityError:
        again = message_of_form(author, key)
        if again is None or again.thread_id != thread.pk:
            raise
        return again, False
    return message, True


def thread_record(
    *,
    action: str,
    actor: User,
    thread: Thread,
    kind: TimelineKind,
    summary: str,
    resource_id: uuid.UUID | None = None,
    fields: Sequence[str] = (),
) -> None:
    audit_record(
        action=action,
        actor=actor,
        patient_id=thread.patient_id,
        resource_type="portal_thread",
        resource_id=str(resource_id or thread.pk),
        fields=fields,
    )
    timeline_add(
        patient=thread.patient,
        kind=kind,
        summary=summary,
        actor=actor,
        ref_type="portal_thread",
        ref_id=str(thread.pk),
    )


def inbox_words(code: str) -> str:
    # The timeline is staff-facing and in English, whatever language the page spoke.
    return {"care_team": "care team", "front_desk": "front desk", "billing": "billing"}.get(
        code, code.replace("_", " ")
    )


# --- the patient's side --------------------------------------------------------------------


def _own_thread(account: PortalAccount, thread_id: uuid.UUID, *, lock: bool = False) -> Thread:
    threads = Thread.objects.select_related("patient")
    if lock:
        threads = threads.select_for_update()
    thread = threads.filter(pk=thread_id, patient_id=account.patient_id).first()
    if thread is None:
        raise NotFound("no such thread")
    return thread


def _patient_message_fields(files: list[tuple[Upload, str]]) -> tuple[str, ...]:
    return ("body", "attachments") if files else ("body",)


@transaction.atomic
def thread_start(
    *,
    account: PortalAccount,
    inbox: str,
    subject: str,
    body: str,
    idempotency_key: str,
    uploads: Sequence[Upload] = (),
) -> Thread:
    """The patient starts a thread; the same form posted again returns the same thread.

    `MessageInvalid` or `AttachmentRefused` (with reasons) write nothing.
    """
    actor = account.user
    again = message_of_form(actor, idempotency_key)
    if again is not None:
        return _own_thread(account, again.thread_id)
    if inbox not in inboxes():
        raise MessageInvalid(_("Choose who your message is for."))
    subject = _text(
        subject,
        limit=SUBJECT_MAX,
        missing=_("Write a subject."),
        too_long=_("The subject is too long (at most %(n)s characters).") % {"n": SUBJECT_MAX},
    )
    body = body_checked(body)
    files = uploads_checked(uploads)
    at = now()
    try:
        with transaction.atomic():  # a savepoint: a racing double submit may win
            thread = Thread(
                id=uuid.uuid4(),
                patient=account.patient,
                subject=subject,
                inbox=inbox,
                created_at=at,
                updated_at=at,
                due_at=due_after(at, inboxes()[inbox]),
            )
            thread.save(force_insert=True)
            message = message_write(
                thread=thread,
                kind=AuthorKind.PATIENT,
                author=actor,
                body=body,
                key=idempotency_key,
                files=files,
                at=at,
            )
    except IntegrityError:
        again = message_of_form(actor, idempotency_key)
        if again is None:
            raise
        return _own_thread(account, again.thread_id)
    thread_record(
        action="message.thread_start",
        actor=actor,
        thread=thread,
        kind=TimelineKind.MESSAGE_RECEIVED,
        summary=f"Secure message received ({inbox_words(inbox)})",
        resource_id=message.pk,
        fields=("subject", *_patient_message_fields(files)),
    )
    return thread


@transaction.atomic
def patient_reply(
    *,
    account: PortalAccount,
    thread_id: uuid.UUID,
    body: str,
    idempotency_key: str,
    uploads: Sequence[Upload] = (),
) -> ThreadMessage:
    """The patient replies in their open thread; sets the answer's due time if none."""
    actor = account.user
    thread = _own_thread(account, thread_id, lock=True)
    again = message_of_form(actor, idempotency_key)
    if again is not None and again.thread_id == thread.pk:
        return again
    if thread.status != ThreadStatus.OPEN:
        raise MessageInvalid(_("This conversation is closed. Start a new message instead."))
    body = body_checked(body)
    files = uploads_checked(uploads)
    at = now()
    message, written = message_reply_once(
        thread=thread,
        kind=AuthorKind.PATIENT,
        author=actor,
        body=body,
        key=idempotency_key,
        files=files,
        at=at,
    )
    if not written:
        return message
    thread.updated_at = at
    if thread.due_at is None:
        thread.due_at = due_after(at, inboxes().get(thread.inbox, 1))
    thread.save(update_fields=["updated_at", "due_at"])
    thread_record(
        action="message.reply",
        actor=actor,
        thread=thread,
        kind=TimelineKind.MESSAGE_RECEIVED,
        summary=f"Secure message received ({inbox_words(thread.inbox)})",
        resource_id=message.pk,
        fields=_patient_message_fields(files),
    )
    return message


def patient_threads(*, account: PortalAccount) -> QuerySet[Thread]:
    """The patient's threads, newest first, each with `unread` (messages to them not
    yet opened). The list shows subjects: the caller audits the read."""
    return (
        Thread.objects.filter(patient_id=account.patient_id)
        .annotate(
            unread=Count(
                "messages",
                filter=~Q(messages__author_kind=AuthorKind.PATIENT)
                & Q(messages__read_at__isnull=True),
            )
        )
        .order_by("-updated_at", "id")
    )


def patient_threads_listed(*, account: PortalAccount) -> None:
    audit_record(
        action="message.list",
        actor=account.user,
        patient_id=account.patient_id,
        resource_type="portal_thread",
        fields=("subject", "inbox", "status"),
    )


@dataclass(frozen=True)
class ThreadView:
    thread: Thread
    messages: list[ThreadMessage]


def thread_messages(thread: Thread) -> list[ThreadMessage]:
    return list(
        ThreadMessage.objects.filter(thread=thread)
        .select_related("author")
        .prefetch_related("attachments")
        .order_by("created_at", "id")
    )


@transaction.atomic
def patient_thread_open(*, account: PortalAccount, thread_id: uuid.UUID) -> ThreadView:
    """The patient opens their thread: what the practice wrote is read now; audited."""
    thread = _own_thread(account, thread_id)
    at = now()
    ThreadMessage.objects.filter(thread=thread, read_at__isnull=True).exclude(
        author_kind=AuthorKind.PATIENT
    ).update(read_at=at)
    audit_record(
        action="message.view",
        actor=account.user,
        patient_id=thread.patient_id,
        resource_type="portal_thread",
        resource_id=str(thread.pk),
        fields=("subject", "body", "attachments"),
    )
    return ThreadView(thread=thread, messages=thread_messages(thread))


@transaction.atomic
def patient_attachment(
    *, account: PortalAccount, attachment_id: uuid.UUID
) -> tuple[ThreadAttachment, bytes]:
    """An attachment of one of the patient's own threads, decrypted; audited."""
    attachment = (
        ThreadAttachment.objects.select_related("message__thread")
        .filter(pk=attachment_id, message__thread__patient_id=account.patient_id)
        .first()
    )
    if attachment is None:
        raise NotFound("no such attachment")
    audit_record(
        action="message.attachment_view",
        actor=account.user,
        patient_id=account.patient_id,
        resource_type="portal_attachment",
        resource_id=str(attachment.pk),
        fields=("filename", "content"),
    )
    return attachment, attachment_bytes(attachment)
