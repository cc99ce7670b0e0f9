"""E-mail over SMTP, with STARTTLS required: careloop never hands PHI to a relay in clear.

Each message carries a text and an HTML part, a Message-ID made from its idempotency
key (so a resend after a crash is recognisably the same message), an envelope sender
naming the message (VERP, careloop.outreach.message_tokens) so that a bounce finds it,
and an iCalendar invitation when it is about an appointment. Mail that is not about an
appointment offers unsubscribing: List-Unsubscribe with a signed https link and a
mailto (RFC 2369), and List-Unsubscribe-Post for one-click (RFC 8058), which the big
mailbox providers require of bulk senders. The relay's DKIM signature must cover both
headers for one-click to be honoured.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from django.conf import settings

from careloop.consent.baa import baa_require
from careloop.consent.models import Purpose
from careloop.core.clock import now
from careloop.outreach.channels.base import PermanentFailure, TemporaryFailure
from careloop.outreach.ics import appointment_ics
from careloop.outreach.message_tokens import verp_address
from careloop.outreach.models import Message
from careloop.outreach.unsubscribe import unsubscribe_mailto, unsubscribe_url

# What a patient must hear about by e-mail: their appointments. Every other purpose
# (care reminders, billing, surveys, marketing) is one the patient may stop by e-mail
# (careloop.consent.decisions), so its mail offers a one-step unsubscribe.
TRANSACTIONAL = frozenset({Purpose.APPOINTMENT})
# Header lines up to RFC 5322's limit of 998: folded at the default 78, a long
# List-Unsubscribe URL would be cut into RFC 2047 encoded words, which no mailbox
# provider reads as a link.
MAIL_POLICY = policy.default.clone(max_line_length=998)


def _html_from_text(text: str) -> str:
    paragraphs = [html.escape(p).replace("\n", "<br>") for p in text.split("\n\n") if p.strip()]
    return (
        "<!doctype html><html><body>"
        + "".join(f"<p>{p}</p>" for p in paragraphs)
        + ("</body></html>")
    )


def compose(message: Message) -> EmailMessage:
    """The MIME message: text and HTML alternatives, headers from coded values only."""
    sender = settings.SMTP_FROM
    email = EmailMessage(policy=MAIL_POLICY)
    email["From"] = sender
    email["To"] = message.address
    email["Subject"] = message.subject or settings.PRACTICE_NAME
    email["Date"] = format_datetime(now())
    email["Message-ID"] = f"<{message.idempotency_key}@{sender.rpartition('@')[2]}>"
    if message.purpose not in TRANSACTIONAL:
        email["List-Unsubscribe"] = f"<{unsubscribe_url(message)}>, <{unsubscribe_mailto(message)}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email.set_content(message.body)
    email.add_alternative(message.body_html or _html_from_text(message.body), subtype="html")
    if message.appointment is not None:
        email.add_attachment(
            appointment_ics(message.appointment, attendee=message.address),
            maintype="text",
            subtype="calendar",
            filename="appointment.ics",
            params={"method": "REQUEST", "charset": "utf-8"},
        )
    return email


class SmtpEmailChannel:
    def __init__(self) -> None:
        self.vendor_name: str = settings.SMTP_VENDOR

    def send(self, message: Message) -> str:
        baa_require(vendor_name=self.vendor_name, at=now())
        email = compose(message)
        try:
            self._deliver(email, envelope_sender=verp_address(message.id))
        except smtplib.SMTPRecipientsRefused:
            raise PermanentFailure("smtp recipient refused") from None
        except smtplib.SMTPResponseException as error:
            if 500 <= error.smtp_code < 600:
                raise PermanentFailure(f"smtp {error.smtp_code}") from None
            raise TemporaryFailure(f"smtp {error.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as error:
            raise TemporaryFailure(f"smtp {type(error).__name__}") from None
        return str(email["Message-ID"])

    def _deliver(self, email: EmailMessage, *, envelope_sender: str) -> None:
        with smtplib.SMTP(
            settings.SMTP_HOST, settings.SMTP_PORT, timeout=settings.SMTP_TIMEOUT_SECONDS
        ) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                # Possibly a downgrade by someone in the path: never fall back to clear.
                raise TemporaryFailure("smtp server offers no STARTTLS")
            smtp.starttls(context=self._tls_context())
            smtp.ehlo()
            if settings.SMTP_USERNAME:
                smtp.login(settings.SMTP_USERNAME, settings.SMTP_PASSWORD or "")
            smtp.send_message(email, from_addr=envelope_sender)

    @staticmethod
    def _tls_context() -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=settings.SMTP_CA_FILE or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
