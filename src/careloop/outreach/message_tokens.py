"""Signed references to one message, for places a stranger can read: URLs and addresses.

An unsubscribe link, a call's keypress callback and a bounce address each name the
message they are about, and nothing else (no PHI in a URL or an address). They are
signed with the secret key, one salt per use, so a reference made for one purpose
cannot be replayed for another, and a guessed message id gets nowhere.

The bounce address (VERP, `bounces+<message id>-<mac>@SMTP_BOUNCE_DOMAIN`) is hex only
and short enough for a local part (64 characters), since mail servers may change the
case of a local part and some refuse anything longer.
"""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

UNSUBSCRIBE = "careloop.outreach.unsubscribe"
VOICE_GATHER = "careloop.outreach.voice"
_VERP_SALT = "careloop.outreach.verp"
VERP_LOCAL = "bounces"
_VERP = re.compile(rf"{VERP_LOCAL}\+([0-9a-f]{{32}})-([0-9a-f]{{16}})@", re.IGNORECASE)


def message_token(message_id: uuid.UUID, *, use: str) -> str:
    """A token naming `message_id` for one `use` (UNSUBSCRIBE, VOICE_GATHER)."""
    return signing.TimestampSigner(salt=use).sign(message_id.hex)


def message_token_open(token: str, *, use: str, max_age: int | None = None) -> uuid.UUID | None:
    """The message a token names, or None when it was altered, made for another use
    or is older than `max_age` seconds."""
    try:
        return uuid.UUID(hex=signing.TimestampSigner(salt=use).unsign(token, max_age=max_age))
    except (signing.BadSignature, ValueError):
        return None


def _verp_mac(message_hex: str) -> str:
    return salted_hmac(_VERP_SALT, message_hex, algorithm="sha256").hexdigest()[:16]


def bounce_mailbox() -> str:
    """The address bounces, complaints and mailed unsubscribe requests go to."""
    domain = settings.SMTP_BOUNCE_DOMAIN
    return f"{VERP_LOCAL}@{domain}" if domain else str(settings.SMTP_FROM)


def verp_address(message_id: uuid.UUID) -> str:
    """The envelope sender for one message: its bounce comes back to an address naming
    it. Without SMTP_BOUNCE_DOMAIN, the practice's From address."""
    domain = settings.SMTP_BOUNCE_DOMAIN
    if not domain:
        return str(settings.SMTP_FROM)
    return f"{VERP_LOCAL}+{message_id.hex}-{_verp_mac(message_id.hex)}@{domain}"


def verp_message_id(text: str) -> uuid.UUID | None:
    """The message named by the first genuine VERP address in `text`, else None."""
    for match in _VERP.finditer(text):
        message_hex, mac = match.group(1).lower(), match.group(2).lower()
        if constant_time_compare(mac, _verp_mac(message_hex)):
            return uuid.UUID(hex=message_hex)
    return None
