"""The SMS provider's webhooks: public (no session), signature-checked, PHI-free answers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from xml.sax.saxutils import escape

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from careloop.outreach.inbound import inbound_receive, status_receive
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
