"""Unsubscribing from e-mail: the link and mailto a message offers, and what they record.

A link names the message only (a signed token, careloop.outreach.message_tokens); the
message says who and for which purpose. Unsubscribing stops that purpose by e-mail for
that patient, in the consent ledger (careloop.consent.preferences.preferences_opt_out),
so `may_contact` withholds the next such e-mail, and any already queued at send time.
A link works without expiry (CAN-SPAM wants at least 30 days) and more than once.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

from django.conf import settings
from django.urls import reverse

from careloop.consent.models import CaptureMethod, Channel, Purpose
from careloop.consent.preferences import preferences_opt_out
from careloop.outreach.message_tokens import (
    UNSUBSCRIBE,
    bounce_mailbox,
    message_token,
    message_token_open,
)
from careloop.outreach.models import Message

# The recipient opted out from the message itself; the note says which way (link,
# one-click, mailto, complaint).
EMAIL_OPT_OUT_METHOD = CaptureMethod.EMAIL_LINK


def unsubscribe_token(message: Message) -> str:
    return message_token(message.id, use=UNSUBSCRIBE)


def unsubscribe_url(message: Message) -> str:
    """The https one-click link (RFC 8058) for a message."""
    path = reverse("outreach:email_unsubscribe")
    return f"{settings.PUBLIC_BASE_URL}{path}?t={quote(unsubscribe_token(message), safe=':')}"


def unsubscribe_mailto(message: Message) -> str:
    """The mailto alternative: a mail to the bounce mailbox whose subject carries the
    token (`careloop outreach bounces` reads it)."""
    return f"mailto:{bounce_mailbox()}?subject=unsubscribe%20{quote(unsubscribe_token(message))}"


def unsubscribe_message(token: str) -> Message | None:
    """The message an unsubscribe token names, or None for a bad token."""
    message_id = message_token_open(token, use=UNSUBSCRIBE)
    if message_id is None:
        return None
    return Message.objects.select_related("patient").filter(pk=message_id).first()


def email_opt_out(*, message_id: uuid.UUID, how: str) -> bool:
    """Opt the message's patient out of its purpose by e-mail; `how` is coded ("link",
    "one-click", "mailto", "complaint") and goes in the ledger note. False when they
    already were."""
    message = Message.objects.select_related("patient").get(pk=message_id)
    return preferences_opt_out(
        patient=message.patient,
        channel=Channel.EMAIL,
        purpose=Purpose(message.purpose),
        capture_method=EMAIL_OPT_OUT_METHOD,
        note=f"E-mail opt-out ({how}) from message {message.id}",
    )
