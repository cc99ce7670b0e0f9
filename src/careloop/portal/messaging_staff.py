"""Secure messaging, the staff side: the team inbox, replies, assignment, close/reopen.

The rules are careloop.portal.messaging's (read receipts, SLA, notices, double
submits). Staff need the permission table's messages read or write, and see only the
threads of the patients in their scope (careloop.security.scope): a thread outside it
answers `NotFound`, like one that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils.translation import gettext as _

from careloop.consent.models import Purpose
from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.patients.models import Patient, TimelineKind
from careloop.portal.attachments import Upload, attachment_bytes
from careloop.portal.messaging import (  # the shared write steps
    PURPOSE_FOR_INBOX,
    RESOURCE,
    MessageInvalid,
    ThreadView,
    body_checked,
    due_after,
    inbox_words,
    inboxes,
    message_of_form,
    message_reply_once,
    thread_messages,
    thread_record,
    uploads_checked,
)
from careloop.portal.models import (
    AuthorKind,
    Thread,
    ThreadAttachment,
    ThreadMessage,
    ThreadStatus,
)
from careloop.portal.notice import secure_message_notice_enqueue
from careloop.security.audit import audit_record
from careloop.security.models import Role, User
from careloop.security.permissions import Actor, Op, allowed, require
from careloop.security.scope import patient_scope


def _in_scope(actor: User, patient_id: uuid.UUID) -> bool:
    return Patient.objects.filter(patient_scope(actor), pk=patient_id).exists()


def _staff_thread(
    actor: Actor, thread_id: uuid.UUID, op: Op, *, lock: bool = False
) -> tuple[User, Thread]:
    user = require(actor, op, RESOURCE)
    threads = Thread.objects.select_related("patient", "assigned_to")
    if lock:
        threads = threads.select_for_update(of=("self",))
    thread = threads.filter(pk=thread_id).first()
    if thread is None or not _in_scope(user, thread.patient_id):
        raise NotFound("no such thread")
    return user, thread


def message_workers() -> QuerySet[User]:
    """The active staff a thread may be assigned to: the roles that may write messages."""
    roles = [role for role in Role if allowed(role, Op.WRITE, RESOURCE)]
    return User.objects.filter(is_active=True, role__in=roles).order_by(
        "last_name", "first_name", "username"
    )


@dataclass(frozen=True)
class InboxFilter:
    inbox: str = ""
    mine: bool = False
    unassigned: bool = False
    overdue: bool = False
    closed: bool = False


def staff_threads(*, actor: Actor, which: InboxFilter) -> QuerySet[Thread]:
    """The threads in the actor's scope matching `which`, overdue first, then newest;
    each with `unread` (the patient's messages no one has opened). The caller audits."""
    user = require(actor, Op.READ, RESOURCE)
    threads = Thread.objects.filter(
        patient__in=Patient.objects.filter(patient_scope(user)).values("pk"),
        status=ThreadStatus.CLOSED if which.closed else ThreadStatus.OPEN,
    )
    if which.inbox:
        threads = threads.filter(inbox=which.inbox)
    if which.mine:
        threads = threads.filter(assigned_to=user)
    if which.unassigned:
        threads = threads.filter(assigned_to__isnull=True)
    if which.overdue:
        threads = threads.filter(due_at__lt=now())
    return (
        threads.select_related("patient", "assigned_to")
        .annotate(
            unread=Count(
                "messages",
                filter=Q(messages__author_kind=AuthorKind.PATIENT)
                & Q(messages__read_at__isnull=True),
            )
        )
        # Soonest due first; answered threads (no due time) after, on both engines.
        .order_by(F("due_at").asc(nulls_last=True), "-updated_at", "id")
    )


def staff_threads_listed(*, actor: User) -> None:
    audit_record(
        action="message.list",
        actor=actor,
        resource_type="portal_thread",
        fields=("patient", "subject", "inbox", "status"),
    )


@transaction.atomic
def staff_thread_open(*, actor: Actor, thread_id: uuid.UUID) -> ThreadView:
    """Staff open a thread: the patient's messages in it are read now; audited."""
    user, thread = _staff_thread(actor, thread_id, Op.READ)
    ThreadMessage.objects.filter(
        thread=thread, author_kind=AuthorKind.PATIENT, read_at__isnull=True
    ).update(read_at=now())
    audit_record(
        action="message.view",
        actor=user,
        patient_id=thread.patient_id,
        resource_type="portal_thread",
        resource_id=str(thread.pk),
        fields=("subject", "body", "attachments"),
    )
    return ThreadView(thread=thread, messages=thread_messages(thread))


@transaction.atomic
def staff_reply(
    *,
    actor: Actor,
    thread_id: uuid.UUID,
    body: str,
    idempotency_key: str,
    uploads: Sequence[Upload] = (),
) -> ThreadMessage:
    """Staff answer in an open thread: the answer is no longer due, an unassigned thread
    becomes the writer's, and the patient is told (without content) on their channel."""
    user, thread = _staff_thread(actor, thread_id, Op.WRITE, lock=True)
    again = message_of_form(user, idempotency_key)
    if again is not None and again.thread_id == thread.pk:
        return again
    if thread.status != ThreadStatus.OPEN:
        raise MessageInvalid(_("This thread is closed. Reopen it to reply."))
    body = body_checked(body)
    files = uploads_checked(uploads)
    at = now()
    message, written = message_reply_once(
        thread=thread,
        kind=AuthorKind.STAFF,
        author=user,
        body=body,
        key=idempotency_key,
        files=files,
        at=at,
    )
    if not written:
        return message
    thread.updated_at, thread.due_at = at, None
    fields = ["updated_at", "due_at"]
    if thread.assigned_to_id is None:
        thread.assigned_to = user
        fields.append("assigned_to")
    thread.save(update_fields=fields)
    thread_record(
        action="message.reply",
        actor=user,
        thread=thread,
        kind=TimelineKind.MESSAGE_SENT,
        summary=f"Secure message sent ({inbox_words(thread.inbox)})",
        resource_id=message.pk,
        fields=("body", "attachments") if files else ("body",),
    )
    secure_message_notice_enqueue(
        patient=thread.patient,
        purpose=PURPOSE_FOR_INBOX.get(thread.inbox, Purpose.CARE_REMINDER),
        posted_id=message.pk,
    )
    return message


@transaction.atomic
def thread_assign(*, actor: Actor, thread_id: uuid.UUID, assignee_id: int | None) -> Thread:
    """Give the thread to a staff member who may answer messages (None: unassign)."""
    user, thread = _staff_thread(actor, thread_id, Op.WRITE, lock=True)
    assignee = None
    if assignee_id is not None:
        assignee = message_workers().filter(pk=assignee_id).first()
        if assignee is None:
            raise MessageInvalid(_("Choose someone who answers messages."))
    if thread.assigned_to_id == (assignee.pk if assignee else None):
        return thread
    thread.assigned_to = assignee
    thread.save(update_fields=["assigned_to"])
    who = "unassigned" if assignee is None else f"assigned to staff #{assignee.pk}"
    thread_record(
        action="message.assign",
        actor=user,
        thread=thread,
        kind=TimelineKind.MESSAGE_RECEIVED,
        summary=f"Secure message thread {who} ({inbox_words(thread.inbox)})",
        fields=("assigned_to",),
    )
    return thread


@transaction.atomic
def thread_close(*, actor: Actor, thread_id: uuid.UUID) -> Thread:
    """Close the thread (nothing more is due); closing a closed thread changes nothing."""
    user, thread = _staff_thread(actor, thread_id, Op.WRITE, lock=True)
    if thread.status == ThreadStatus.CLOSED:
        return thread
    thread.status, thread.closed_at, thread.due_at = ThreadStatus.CLOSED, now(), None
    thread.save(update_fields=["status", "closed_at", "due_at"])
    thread_record(
        action="message.close",
        actor=user,
        thread=thread,
        kind=TimelineKind.MESSAGE_RECEIVED,
        summary=f"Secure message thread closed ({inbox_words(thread.inbox)})",
        fields=("status",),
    )
    return thread


@transaction.atomic
def thread_reopen(*, actor: Actor, thread_id: uuid.UUID) -> Thread:
    """Reopen a closed thread; if the patient wrote last, an answer is due again."""
    user, thread = _staff_thread(actor, thread_id, Op.WRITE, lock=True)
    if thread.status == ThreadStatus.OPEN:
        return thread
    at = now()
    last = ThreadMessage.objects.filter(thread=thread).order_by("-created_at", "-id").first()
    thread.status, thread.closed_at = ThreadStatus.OPEN, None
    if last is not None and last.author_kind == AuthorKind.PATIENT:
        thread.due_at = due_after(at, inboxes().get(thread.inbox, 1))
    thread.save(update_fields=["status", "closed_at", "due_at"])
    thread_record(
        action="message.reopen",
        actor=user,
        thread=thread,
        kind=TimelineKind.MESSAGE_RECEIVED,
        summary=f"Secure message thread reopened ({inbox_words(thread.inbox)})",
        fields=("status",),
    )
    return thread


@transaction.atomic
def staff_attachment(*, actor: Actor, attachment_id: uuid.UUID) -> tuple[ThreadAttachment, bytes]:
    """An attachment of a thread in the actor's scope, decrypted; audited."""
    user = require(actor, Op.READ, RESOURCE)
    attachment = (
        ThreadAttachment.objects.select_related("message__thread").filter(pk=attachment_id).first()
    )
    if attachment is None or not _in_scope(user, attachment.message.thread.patient_id):
        raise NotFound("no such attachment")
    audit_record(
        action="message.attachment_view",
        actor=user,
        patient_id=attachment.message.thread.patient_id,
        resource_type="portal_attachment",
        resource_id=str(attachment.pk),
        fields=("filename", "content"),
    )
    return attachment, attachment_bytes(attachment)
