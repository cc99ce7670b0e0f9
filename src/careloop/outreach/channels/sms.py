"""SMS through a Twilio-compatible REST API (`POST .../Accounts/{sid}/Messages.json`).

A 201 gives the provider's message sid. 429 and 5xx are temporary (429's Retry-After
is honoured); any other 4xx is permanent and recorded by the provider's numeric error
code alone, since its text quotes the number. The idempotency key travels as the
`Idempotency-Key` header, so a compatible provider recognises a resend.
"""

from __future__ import annotations

import httpx
from django.conf import settings

from careloop.consent.baa import baa_require
from careloop.core.clock import now
from careloop.outreach.channels.base import PermanentFailure, TemporaryFailure
from careloop.outreach.models import Message

STATUS_CALLBACK_PATH = "/webhooks/sms/status"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _error_code(response: httpx.Response) -> str:
    try:
        code = response.json().get("code")
    except ValueError:
        return ""
    return str(code) if isinstance(code, int) else ""


class TwilioSmsChannel:
    def __init__(self) -> None:
        self.vendor_name: str = settings.SMS_VENDOR

    def send(self, message: Message) -> str:
        baa_require(vendor_name=self.vendor_name, at=now())
        account = settings.SMS_ACCOUNT_SID
        url = f"{settings.SMS_BASE_URL.rstrip('/')}/2010-04-01/Accounts/{account}/Messages.json"
        form = {
            "MessagingServiceSid": settings.SMS_MESSAGING_SERVICE_SID,
            "To": message.address,
            "Body": message.body,
        }
        if settings.SMS_WEBHOOK_BASE_URL:
            form["StatusCallback"] = settings.SMS_WEBHOOK_BASE_URL.rstrip("/") + (
                STATUS_CALLBACK_PATH
            )
        try:
            response = httpx.post(
                url,
                data=form,
                auth=(account, settings.SMS_AUTH_TOKEN),
                headers={"Idempotency-Key": message.idempotency_key},
                timeout=settings.SMS_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as error:
            raise TemporaryFailure(f"sms {type(error).__name__}") from None
        return self._provider_id(response)

    @staticmethod
    def _provider_id(response: httpx.Response) -> str:
        status = response.status_code
        if status == 429:
            raise TemporaryFailure("sms 429 rate limited", retry_after=_retry_after(response))
        if status >= 500:
            raise TemporaryFailure(f"sms {status}", retry_after=_retry_after(response))
        if status >= 400:
            raise PermanentFailure(f"sms {status} code {_error_code(response) or 'none'}")
        sid = response.json().get("sid") if status in (200, 201) else None
        if not isinstance(sid, str) or not sid:
            raise TemporaryFailure(f"sms {status} without a message sid")
        return sid
