"""The providers' webhooks and the unsubscribe link: no session, a signature or a signed
token is the credential, and the answers carry no PHI."""

from __future__ import annotations

import functools
from collections.abc import Callable
from xml.sax.saxutils import escape

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from careloop.consent.models import Purpose
from careloop.outreach.inbound import inbound_receive, status_receive
from careloop.outreach.unsubscribe import email_opt_out, unsubscribe_message
from careloop.outreach.voice import GOODBYE, gather_message, voice_keypress, voice_status
from careloop.outreach.webhooks import signature_valid

View = Callable[[HttpRequest], HttpResponse]


def signed_webhook(view: View) -> View:
    """POST only, no CSRF token (the provider has none), and a valid signature or 403."""

    @functools.wraps(view)
    def checked(request: HttpRequest) -> HttpResponse:
        if not signature_valid(request):
            return HttpResponseForbidden("bad signature")
        return view(request)

    wrapped: View = csrf_exempt(require_POST(checked))
    wrapped.careloop_signed_webhook = True  # type: ignore[attr-defined]
    return wrapped


def twiml(reply: str | None) -> HttpResponse:
    inner = f"<Message>{escape(reply)}</Message>" if reply else ""
    return HttpResponse(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>',
        content_type="text/xml",
    )


@signed_webhook
def sms_inbound(request: HttpRequest) -> HttpResponse:
    """An SMS from a patient: keywords are acted on and answered; the rest is filed."""
    reply = inbound_receive(
        provider_message_id=request.POST.get("MessageSid", ""),
        from_address=request.POST.get("From", ""),
        body=request.POST.get("Body", ""),
    )
    return twiml(reply)


@signed_webhook
def sms_status(request: HttpRequest) -> HttpResponse:
    """A delivery report for a message we sent."""
    status_receive(
        provider_message_id=request.POST.get("MessageSid", ""),
        provider_status=request.POST.get("MessageStatus", ""),
        error_code=request.POST.get("ErrorCode", ""),
    )
    return HttpResponse(status=204)


def _voice(script: str) -> HttpResponse:
    return HttpResponse(script, content_type="text/xml")


@signed_webhook
def voice_gather(request: HttpRequest) -> HttpResponse:
    """The key a patient pressed on a reminder call (the Gather's action)."""
    call_sid = request.POST.get("CallSid", "")
    message = gather_message(token=request.GET.get("m", ""), call_sid=call_sid)
    if message is None:
        return _voice(GOODBYE)
    return _voice(
        voice_keypress(message=message, call_sid=call_sid, digits=request.POST.get("Digits", ""))
    )


@signed_webhook
def voice_status_callback(request: HttpRequest) -> HttpResponse:
    """A reminder call's final status."""
    voice_status(
        call_sid=request.POST.get("CallSid", ""),
        call_status=request.POST.get("CallStatus", ""),
    )
    return HttpResponse(status=204)


# A link in an e-mail: the signed token is the credential, so there is no CSRF token to
# check (a mailbox provider's one-click POST, RFC 8058, carries none).
@csrf_exempt
@require_http_methods(["GET", "POST"])
def email_unsubscribe(request: HttpRequest) -> HttpResponse:
    """GET asks to confirm; POST (the page's button, or a one-click POST) unsubscribes
    the message's patient from its purpose by e-mail."""
    message = unsubscribe_message(request.GET.get("t", ""))
    if message is None:
        return render(request, "outreach/unsubscribe.html", {"state": "invalid"}, status=403)
    context = {"purpose": Purpose(message.purpose).label.lower()}
    if request.method == "GET":
        return render(request, "outreach/unsubscribe.html", {"state": "confirm", **context})
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    email_opt_out(message_id=message.id, how="one-click" if one_click else "link")
    return render(request, "outreach/unsubscribe.html", {"state": "done", **context})


email_unsubscribe.careloop_signed_webhook = True  # type: ignore[attr-defined]
