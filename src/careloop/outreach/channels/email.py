"""E-mail over SMTP, with STARTTLS required: careloop never hands PHI to a relay in clear.

Each message carries a text and an HTML part, a Message-ID made from its idempotency
key (so a resend after a crash is recognisably the same message), and, when its
purpose is not transactional, a List-Unsubscribe header (RFC 2369).
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from django.conf import settings

from careloop.consent.baa import baa_require
from careloop.consent.models import Purpose
from careloop.core.clock import now
from careloop.outreach.channels.base import PermanentFailure, TemporaryFailure
from careloop.outreach.models import Message

# Purposes a patient needs to hear about; the rest offer one-step unsubscribing.
TRANSACTIONAL = frozenset({Purpose.APPOINTMENT, Purpose.CARE_REMINDER, Purpose.BILLING})


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
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.address
    email["Subject"] = message.subject or settings.PRACTICE_NAME
    email["Date"] = format_datetime(now())
    email["Message-ID"] = f"<{message.idempotency_key}@{sender.rpartition('@')[2]}>"
    if message.purpose not in TRANSACTIONAL:
        email["List-Unsubscribe"] = f"<mailto:{sender}?subject=unsubscribe%20{message.id}>"
    email.set_content(message.body)
    email.add_alternative(message.body_html or _html_from_text(message.body), subtype="html")
    return email


class SmtpEmailChannel:
    def __init__(self) -> None:
        self.vendor_name: str = settings.SMTP_VENDOR

    def send(self, message: Message) -> str:
        baa_require(vendor_name=self.vendor_name, at=now())
        email = compose(message)
        try:
            self._deliver(email)
        except smtplib.SMTPRecipientsRefused:
            raise PermanentFailure("smtp recipient refused") from None
        except smtplib.SMTPResponseException as error:
            if 500 <= error.smtp_code < 600:
                raise PermanentFailure(f"smtp {error.smtp_code}") from None
            raise TemporaryFailure(f"smtp {error.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as error:
            raise TemporaryFailure(f"smtp {type(error).__name__}") from None
        return str(email["Message-ID"])

    def _deliver(self, email: EmailMessage) -> None:
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
            smtp.send_message(email)

    @staticmethod
    def _tls_context() -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=settings.SMTP_CA_FILE or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
