"""Voice reminders: a text-to-speech call through the Twilio-compatible provider.

`POST .../Accounts/{sid}/Calls.json` with the call's TwiML inline: the message is read
out inside a `<Gather>` of one digit whose action is careloop's signed webhook
(`/webhooks/voice/gather?m=<signed message token>`), so a keypress on the call comes
back naming the message and nothing else; 1 confirms the appointment, 2 cancels it
(careloop.outreach.voice). The message is logistics only (a time and a place), like
any voice template. Errors are handled as for SMS (careloop.outreach.channels.sms):
429 and 5xx are temporary, other 4xx permanent, and the idempotency key travels as
`Idempotency-Key`. A call whose answer never came is in doubt, and `lookup` finds it
in the provider's list of calls to the number (`GET .../Calls.json?To=...`): one from
our caller id, made no earlier than the message, that no other message of ours has
recorded. A call carries nothing of ours to match on, so of two reminders in doubt to
one number at once each takes one of the provider's calls; either way no number is
called twice for one message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

import httpx
from django.conf import settings
from django.urls import reverse

from careloop.consent.baa import baa_require
from careloop.core.clock import now
from careloop.outreach.channels.base import (
    Found,
    PermanentFailure,
    TemporaryFailure,
    UnknownOutcome,
    provider_http,
)
from careloop.outreach.channels.sms import NOT_CONNECTED, provider_id, records_lookup, sent_to
from careloop.outreach.message_tokens import VOICE_GATHER, message_token
from careloop.outreach.models import Message

# Twilio refuses inline TwiML longer than this.
TWIML_MAX_CHARS = 4000
# The text-to-speech voice per message language (BCP 47, as <Say language> takes it).
SAY_LANGUAGE = {"en": "en-US", "es": "es-US"}
PROMPTS = {
    "en": {
        "choose": "To confirm this appointment, press 1. To cancel it, press 2.",
        "no_answer": "We did not hear a choice. To change your appointment, please call us.",
        "again": "Sorry, that was not a choice.",
        "confirmed": "Thank you. Your appointment is confirmed. Goodbye.",
        "cancelled": "Your appointment is cancelled. Please call us to book another. Goodbye.",
        "closed": "This appointment can no longer be changed here. Please call us. Goodbye.",
    },
    "es": {
        "choose": "Para confirmar esta cita, oprima 1. Para cancelarla, oprima 2.",
        "no_answer": "No escuchamos una opción. Para cambiar su cita, llámenos.",
        "again": "Lo sentimos, esa no es una opción.",
        "confirmed": "Gracias. Su cita está confirmada. Adiós.",
        "cancelled": "Su cita está cancelada. Llámenos para hacer otra. Adiós.",
        "closed": "Esta cita ya no se puede cambiar por aquí. Llámenos. Adiós.",
    },
}


def _language(message: Message) -> str:
    return message.language.split("-")[0] if message.language.split("-")[0] in PROMPTS else "en"


def prompt(message: Message, key: str) -> str:
    return PROMPTS[_language(message)][key]


def say(message: Message, text: str) -> str:
    language = SAY_LANGUAGE[_language(message)]
    return f"<Say language={quoteattr(language)}>{escape(text)}</Say>"


def gather_url(message: Message) -> str:
    """Where the provider posts the key pressed: the public webhook base the signature
    is checked against, and the message's signed token."""
    token = quote(message_token(message.id, use=VOICE_GATHER), safe=":")
    base = settings.SMS_WEBHOOK_BASE_URL.rstrip("/")
    return f"{base}{reverse('outreach:voice_gather')}?m={token}"


def gather(message: Message, spoken: str) -> str:
    """`spoken` inside a one-digit Gather; what follows it runs on silence."""
    return (
        f'<Gather numDigits="1" timeout="8" method="POST" action={quoteattr(gather_url(message))}>'
        f"{spoken}</Gather>{say(message, prompt(message, 'no_answer'))}"
    )


def twiml(inner: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'


def call_twiml(message: Message) -> str:
    """The call: the reminder read out, and for one about an appointment a keypress
    awaited (the voice template says which keys: careloop.outreach.builtin_templates)."""
    spoken = say(message, message.body)
    if message.appointment_id is None:
        return twiml(spoken)
    return twiml(gather(message, spoken))


class TwilioVoiceChannel:
    def __init__(self) -> None:
        self.vendor_name: str = settings.VOICE_VENDOR

    def send(self, message: Message) -> str:
        baa_require(vendor_name=self.vendor_name, at=now())
        if not settings.VOICE_FROM_NUMBER:
            raise PermanentFailure("voice has no caller id (VOICE_FROM_NUMBER)")
        if not settings.SMS_WEBHOOK_BASE_URL:
            # A keypress could not come back, and the call's outcome never known.
            raise PermanentFailure("voice needs the public webhook base (SMS_WEBHOOK_BASE_URL)")
        script = call_twiml(message)
        if len(script) > TWIML_MAX_CHARS:
            raise PermanentFailure(f"voice twiml over {TWIML_MAX_CHARS} characters")
        account = settings.SMS_ACCOUNT_SID
        url = _calls_url()
        form = {
            "To": message.address,
            "From": settings.VOICE_FROM_NUMBER,
            "Twiml": script,
            "StatusCallback": settings.SMS_WEBHOOK_BASE_URL.rstrip("/")
            + reverse("outreach:voice_status"),
        }
        try:
            response = provider_http().post(
                url,
                data=form,
                auth=(account, settings.SMS_AUTH_TOKEN),
                headers={"Idempotency-Key": message.idempotency_key},
                timeout=settings.SMS_TIMEOUT_SECONDS,
            )
        except NOT_CONNECTED as error:
            raise TemporaryFailure(f"voice {type(error).__name__}") from None
        except httpx.HTTPError as error:
            # The request may have reached the provider: a resend could ring twice.
            raise UnknownOutcome(f"voice {type(error).__name__}") from None
        return provider_id(response, label="voice")

    def lookup(self, message: Message) -> Found | None:
        """The provider's record of the call `message` placed, by number, caller id
        and time."""
        baa_require(vendor_name=self.vendor_name, at=now())
        return records_lookup(
            message, url=_calls_url(), records_key="calls", is_ours=_is_our_call, label="voice"
        )


def _calls_url() -> str:
    account = settings.SMS_ACCOUNT_SID
    return f"{settings.SMS_BASE_URL.rstrip('/')}/2010-04-01/Accounts/{account}/Calls.json"


def _is_our_call(record: dict[str, Any], message: Message) -> bool:
    return sent_to(record, message) and record.get("from") == settings.VOICE_FROM_NUMBER
