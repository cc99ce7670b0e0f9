"""The staff team inbox for the portal's secure messages, mounted at /inbox/.

The list filters by inbox and by mine / unassigned / overdue (or shows closed threads);
a thread page shows the conversation with read receipts, and takes a reply (with
attachments), an assignment, close and reopen. The rules and the audit are in
careloop.portal.messaging_staff; every page needs messages read, every change messages
write, and a thread outside the user's patient scope is a 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages as flash
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from careloop.core.clock import now
from careloop.core.web import staff_page
from careloop.portal import messaging, messaging_staff
from careloop.portal.attachments import MAX_FILES, AttachmentRefused, max_bytes
from careloop.portal.uploads import upload_form
from careloop.portal.views_messages import attachment_response, new_key, uploads_from
from careloop.security.models import User
from careloop.security.permissions import Op, Resource

PAGE_SIZE = 50
FILTERS = ("mine", "unassigned", "overdue", "closed")


def _thread_url(thread_id: uuid.UUID) -> str:
    return reverse("inbox:thread", args=[thread_id])


@require_safe
@staff_page(Op.READ, Resource.MESSAGES)
def inbox_list(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.user, User)  # noqa: S101 - staff_page let a signed-in user in
    codes = messaging.inboxes()
    chosen = request.GET.get("inbox", "")
    show = request.GET.get("show", "")
    which = messaging_staff.InboxFilter(
        inbox=chosen if chosen in codes else "",
        mine=show == "mine",
        unassigned=show == "unassigned",
        overdue=show == "overdue",
        closed=show == "closed",
    )
    threads = messaging_staff.staff_threads(actor=request.user, which=which)
    page = Paginator(threads, PAGE_SIZE).get_page(request.GET.get("page", 1))
    messaging_staff.staff_threads_listed(actor=request.user)
    at = now()
    context = {
        "page": page,
        "rows": [
            {
                "thread": t,
                "inbox": messaging.inbox_label(t.inbox),
                "overdue": messaging.is_overdue(t, at),
            }
            for t in page
        ],
        "inboxes": messaging.inbox_choices(),
        "chosen": which.inbox,
        "show": show if show in FILTERS else "",
        "filters": [
            ("", "Open"),
            ("mine", "Mine"),
            ("unassigned", "Unassigned"),
            ("overdue", "Overdue"),
            ("closed", "Closed"),
        ],
    }
    return render(request, "inbox/list.html", context)


def _thread_page(
    request: HttpRequest, thread_id: uuid.UUID, *, body: str = "", key: str = "", error: str = ""
) -> HttpResponse:
    view = messaging_staff.staff_thread_open(actor=request.user, thread_id=thread_id)
    context: dict[str, Any] = {
        "thread": view.thread,
        "posts": view.messages,
        "inbox": messaging.inbox_label(view.thread.inbox),
        "overdue": messaging.is_overdue(view.thread),
        "workers": list(messaging_staff.message_workers()),
        "body": body,
        "key": key or new_key(),
        "error": error,
        "max_mb": f"{max_bytes() / (1024 * 1024):g}",
        "max_files": MAX_FILES,
    }
    return render(request, "inbox/thread.html", context)


@upload_form
@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.READ, Resource.MESSAGES)
def thread(request: HttpRequest, thread_id: uuid.UUID) -> HttpResponse:
    """The conversation; its POST is a reply (which needs messages write)."""
    if request.method != "POST":
        return _thread_page(request, thread_id)
    body = request.POST.get("body", "")
    key = request.POST.get("idempotency_key", "")
    try:
        messaging_staff.staff_reply(
            actor=request.user,
            thread_id=thread_id,
            body=body,
            idempotency_key=key,
            uploads=uploads_from(request),
        )
    except (messaging.MessageInvalid, AttachmentRefused) as refused:
        return _thread_page(request, thread_id, body=body, key=key, error=refused.reason)
    flash.success(request, "Reply sent. The patient was notified without its content.")
    return HttpResponseRedirect(_thread_url(thread_id) + "#latest")


@require_POST
@staff_page(Op.WRITE, Resource.MESSAGES)
def assign(request: HttpRequest, thread_id: uuid.UUID) -> HttpResponse:
    raw = request.POST.get("assignee", "")
    if raw != "none" and not raw.isdigit():
        flash.error(request, "Choose someone to assign the thread to.")
        return HttpResponseRedirect(_thread_url(thread_id))
    try:
        messaging_staff.thread_assign(
            actor=request.user,
            thread_id=thread_id,
            assignee_id=None if raw == "none" else int(raw),
        )
    except messaging.MessageInvalid as refused:
        flash.error(request, refused.reason)
    return HttpResponseRedirect(_thread_url(thread_id))


@require_POST
@staff_page(Op.WRITE, Resource.MESSAGES)
def close(request: HttpRequest, thread_id: uuid.UUID) -> HttpResponse:
    messaging_staff.thread_close(actor=request.user, thread_id=thread_id)
    return HttpResponseRedirect(_thread_url(thread_id))


@require_POST
@staff_page(Op.WRITE, Resource.MESSAGES)
def reopen(request: HttpRequest, thread_id: uuid.UUID) -> HttpResponse:
    messaging_staff.thread_reopen(actor=request.user, thread_id=thread_id)
    return HttpResponseRedirect(_thread_url(thread_id))


@require_safe
@staff_page(Op.READ, Resource.MESSAGES)
def attachment(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponse:
    found, content = messaging_staff.staff_attachment(
        actor=request.user, attachment_id=attachment_id
    )
    return attachment_response(found, content)
