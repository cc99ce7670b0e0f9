"""SMS through a Twilio-compatible REST API (`POST .../Accounts/{sid}/Messages.json`).

A 201 gives the provider's message sid. 429 and 5xx are temporary (429's Retry-After
is honoured); any other 4xx is permanent and recorded by the provider's numeric error
code alone, since its text quotes the number. A request that went out but whose answer
never came (a read timeout, a dropped connection) is an `UnknownOutcome`. The
idempotency key travels as the `Idempotency-Key` header, which a compatible provider
may honour; Twilio itself does not, so a message in doubt is looked up instead.

`lookup` reads the provider's list of messages to the patient's number
(`GET .../Messages.json?To=...`, which Twilio offers) and takes the one with our text,
created no earlier than our row, whose sid no other message of ours has recorded.
The match is by content because Twilio keeps no field of ours on a message.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings

from careloop.consent.baa import baa_require
from careloop.core.clock import now
from careloop.outreach.channels.base import (
    Found,
    PermanentFailure,
    TemporaryFailure,
    UnknownOutcome,
    provider_http,
)
from careloop.outreach.models import Message

STATUS_CALLBACK_PATH = "/webhooks/sms/status"
# The provider's most recent messages to a number that a lookup reads (one page).
LOOKUP_PAGE_SIZE = 100
# The provider's clock and ours may differ: its record of our message may look this
# much older than our row.
CLOCK_SLACK = datetime.timedelta(minutes=10)
# Statuses of a message the provider never sent and never will.
NEVER_SENT = frozenset({"canceled"})
# Errors raised before the request could reach the provider: nothing is in doubt.
NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


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


def provider_id(response: httpx.Response, *, label: str) -> str:
    """The resource's sid from the provider's answer, or the failure it means."""
    status = response.status_code
    if status == 429:
        raise TemporaryFailure(f"{label} 429 rate limited", retry_after=_retry_after(response))
    if status >= 500:
        raise TemporaryFailure(f"{label} {status}", retry_after=_retry_after(response))
    if status >= 400:
        raise PermanentFailure(f"{label} {status} code {_error_code(response) or 'none'}")
    try:
        sid = response.json().get("sid") if status in (200, 201) else None
    except (AttributeError, ValueError):
        sid = None
    if not isinstance(sid, str) or not sid:
        # Accepted, perhaps, but we cannot tell what it made: the outcome is in doubt.
        raise UnknownOutcome(f"{label} {status} without a sid")
    return sid


def _created(record: dict[str, Any]) -> datetime.datetime | None:
    try:
        return parsedate_to_datetime(str(record.get("date_created", "")))
    except (TypeError, ValueError):
        return None


def _messages_url() -> str:
    account = settings.SMS_ACCOUNT_SID
    return f"{settings.SMS_BASE_URL.rstrip('/')}/2010-04-01/Accounts/{account}/Messages.json"


def sent_to(record: dict[str, Any], message: Message) -> bool:
    """Is this provider record one we sent to the message's number, no earlier than
    the message was made (less the clocks' slack), and not cancelled?"""
    sid, created = record.get("sid"), _created(record)
    return (
        isinstance(sid, str)
        and bool(sid)
        and record.get("to") == message.address
        and str(record.get("direction", "outbound-api")).startswith("outbound")
        and created is not None
        and created >= message.created_at - CLOCK_SLACK
        and str(record.get("status", "")) not in NEVER_SENT
    )


def _is_ours(record: dict[str, Any], message: Message) -> bool:
    """Could this provider record be `message`: our number, our text, not too old?"""
    body = record.get("body")
    service = settings.SMS_MESSAGING_SERVICE_SID
    return (
        sent_to(record, message)
        # A provider may add to the text (a trial notice, an opt-out line).
        and isinstance(body, str)
        and message.body in body
        and (not service or record.get("messaging_service_sid") in (None, service))
    )


class TwilioSmsChannel:
    def __init__(self) -> None:
        self.vendor_name: str = settings.SMS_VENDOR

    def send(self, message: Message) -> str:
        baa_require(vendor_name=self.vendor_name, at=now())
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
            response = provider_http().post(
                _messages_url(),
                data=form,
                auth=(settings.SMS_ACCOUNT_SID, settings.SMS_AUTH_TOKEN),
                headers={"Idempotency-Key": message.idempotency_key},
                timeout=settings.SMS_TIMEOUT_SECONDS,
            )
        except NOT_CONNECTED as error:
            raise TemporaryFailure(f"sms {type(error).__name__}") from None
        except httpx.HTTPError as error:
            raise UnknownOutcome(f"sms {type(error).__name__}") from None
        return provider_id(response, label="sms")

    def lookup(self, message: Message) -> Found | None:
        """The provider's record of `message`, found by number, text and time."""
        baa_require(vendor_name=self.vendor_name, at=now())
        return records_lookup(
            message, url=_messages_url(), records_key="messages", is_ours=_is_ours, label="sms"
        )


def records_lookup(
    message: Message,
    *,
    url: str,
    records_key: str,
    is_ours: Callable[[dict[str, Any], Message], bool],
    label: str,
) -> Found | None:
    """The oldest of the provider's records to the message's number (one page of its
    list at `url`) that `is_ours` takes for `message` and no other message of ours has
    recorded; None when there is none. Raises `TemporaryFailure` when the provider
    cannot be asked now."""
    try:
        response = provider_http().get(
            url,
            params={"To": message.address, "PageSize": str(LOOKUP_PAGE_SIZE)},
            auth=(settings.SMS_ACCOUNT_SID, settings.SMS_AUTH_TOKEN),
            timeout=settings.SMS_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as error:
        raise TemporaryFailure(f"{label} lookup {type(error).__name__}") from None
    if response.status_code != 200:
        raise TemporaryFailure(
            f"{label} lookup {response.status_code}", retry_after=_retry_after(response)
        )
    try:
        records = response.json().get(records_key)
    except (AttributeError, ValueError):
        records = None
    if not isinstance(records, list):
        raise TemporaryFailure(f"{label} lookup unreadable")
    candidates = [r for r in records if isinstance(r, dict) and is_ours(r, message)]
    # Two of our messages may go to one number (and share a text): a sid another one
    # has recorded is not this one's.
    taken = set(
        Message.objects.filter(provider_message_id__in=[r["sid"] for r in candidates])
        .exclude(pk=message.pk)
        .values_list("provider_message_id", flat=True)
    )
    free = [r for r in candidates if r["sid"] not in taken]
    if not free:
        return None
    first = min(free, key=lambda r: _created(r) or now())
    return Found(provider_id=str(first["sid"]), status=str(first.get("status", "")))
