"""Portal pages for secure messages: the inbox, a thread with its replies, a new message,
and an attachment's download (careloop.portal.messaging holds the rules).

Forms carry a random `idempotency_key` made when the form is shown, so a second click
or a resent POST finds the message the first one wrote. Uploads are read in memory
only, capped (careloop.portal.uploads). A refused file or a missing field shows the
form again with the reason and everything typed, and writes nothing.
"""

from __future__ import annotations

import secrets
import uuid
import zoneinfo
from typing import Any, Protocol

from django import forms
from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from careloop.portal import messaging
from careloop.portal.attachments import MAX_FILES, TEXT, AttachmentRefused, Upload, max_bytes
from careloop.portal.models import PortalAccount
from careloop.portal.uploads import oversized, upload_form
from careloop.portal.web import portal_page

FORM_METHODS = ["GET", "HEAD", "POST"]


class NewMessageForm(forms.Form):
    inbox = forms.CharField(max_length=40, required=False)
    subject = forms.CharField(max_length=messaging.SUBJECT_MAX * 2, required=False)
    body = forms.CharField(max_length=messaging.BODY_MAX * 2, required=False, strip=False)
    idempotency_key = forms.CharField(max_length=64, required=False)


class ReplyForm(forms.Form):
    body = forms.CharField(max_length=messaging.BODY_MAX * 2, required=False, strip=False)
    idempotency_key = forms.CharField(max_length=64, required=False)


def new_key() -> str:
    return secrets.token_hex(16)


def uploads_from(request: HttpRequest) -> list[Upload]:
    """The files sent, or `AttachmentRefused` for one the handler left out."""
    skipped = oversized(request)
    if "too_many" in skipped:
        raise AttachmentRefused(_("Attach at most %(n)s files to one message.") % {"n": MAX_FILES})
    if "too_big" in skipped:
        limit = f"{max_bytes() / (1024 * 1024):g}"
        raise AttachmentRefused(
            _("This file is larger than %(limit)s MB. Send a smaller file.") % {"limit": limit}
        )
    return [
        Upload(name=str(upload.name or ""), content=upload.read())
        for upload in request.FILES.getlist("attachments")
    ]


class StoredFile(Protocol):
    """A stored upload (a message attachment, an insurance card)."""

    @property
    def filename(self) -> str: ...
    @property
    def content_type(self) -> str: ...


def attachment_response(attachment: StoredFile, content: bytes) -> HttpResponse:
    """Always a download, never shown in the browser, never sniffed into something else."""
    content_type = attachment.content_type
    if content_type == TEXT:
        content_type = f"{TEXT}; charset=utf-8"
    response = HttpResponse(content, content_type=content_type)
    # Always `attachment` (never `inline`); the name is the patient's, in this reply only.
    response["Content-Disposition"] = (
        content_disposition_header(as_attachment=True, filename=attachment.filename) or "attachment"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "no-store, private"
    return response


def _zone(account: PortalAccount) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(account.patient.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _render(
    request: HttpRequest, account: PortalAccount, template: str, context: dict[str, Any]
) -> HttpResponse:
    # Times in the patient's own zone.
    with timezone.override(_zone(account)):
        return render(request, template, context)


@never_cache
@require_safe
@portal_page
def inbox(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    threads = list(messaging.patient_threads(account=account)[:100])
    messaging.patient_threads_listed(account=account)
    rows = [{"thread": t, "inbox": messaging.inbox_label(t.inbox)} for t in threads]
    return _render(request, account, "portal/messages/inbox.html", {"rows": rows})


@upload_form
@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def new(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    form = NewMessageForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            thread = messaging.thread_start(
                account=account,
                inbox=data["inbox"],
                subject=data["subject"],
                body=data["body"],
                idempotency_key=data["idempotency_key"],
                uploads=uploads_from(request),
            )
        except (messaging.MessageInvalid, AttachmentRefused) as refused:
            error = refused.reason
        else:
            flash.success(request, _("Your message was sent."))
            return HttpResponseRedirect(reverse("portal:message_thread", args=[thread.pk]))
    elif request.method == "POST":
        error = _("Check the message and try again.")
    typed = form.data if request.method == "POST" else {}
    context = {
        "inboxes": messaging.inbox_choices(),
        "chosen": typed.get("inbox", ""),
        "subject": typed.get("subject", ""),
        "body": typed.get("body", ""),
        "key": typed.get("idempotency_key") or new_key(),
        "error": error,
        "max_mb": f"{max_bytes() / (1024 * 1024):g}",
        "max_files": MAX_FILES,
    }
    return _render(request, account, "portal/messages/new.html", context)


@upload_form
@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def thread(request: HttpRequest, account: PortalAccount, thread_id: uuid.UUID) -> HttpResponse:
    error = ""
    typed = ""
    key = ""
    if request.method == "POST":
        form = ReplyForm(request.POST)
        typed = request.POST.get("body", "")
        key = request.POST.get("idempotency_key", "")
        try:
            if not form.is_valid():
                raise messaging.MessageInvalid(_("Check the message and try again."))
            messaging.patient_reply(
                account=account,
                thread_id=thread_id,
                body=form.cleaned_data["body"],
                idempotency_key=form.cleaned_data["idempotency_key"],
                uploads=uploads_from(request),
            )
        except (messaging.MessageInvalid, AttachmentRefused) as refused:
            error = refused.reason
        else:
            flash.success(request, _("Your message was sent."))
            url = reverse("portal:message_thread", args=[thread_id])
            return HttpResponseRedirect(f"{url}#latest")
    view = messaging.patient_thread_open(account=account, thread_id=thread_id)
    context = {
        "thread": view.thread,
        "posts": view.messages,
        "inbox": messaging.inbox_label(view.thread.inbox),
        "body": typed,
        "key": key or new_key(),
        "error": error,
        "max_mb": f"{max_bytes() / (1024 * 1024):g}",
        "max_files": MAX_FILES,
    }
    return _render(request, account, "portal/messages/thread.html", context)


@never_cache
@require_safe
@portal_page
def attachment(
    request: HttpRequest, account: PortalAccount, attachment_id: uuid.UUID
) -> HttpResponse:
    found, content = messaging.patient_attachment(account=account, attachment_id=attachment_id)
    return attachment_response(found, content)
