"""Mail that comes back: bounces (RFC 3464), complaints (RFC 5965) and mailed unsubscribes.

Each arrives at the bounce mailbox (settings.SMTP_BOUNCE_DOMAIN) and is matched to the
message it is about by its VERP address (careloop.outreach.message_tokens), else by our
Message-ID in the returned headers. Then:

- a hard bounce (`Action: failed`, status 5.x.x) marks the message bounced and stops
  e-mail to that address on every record holding it (the contact point's `can_email`,
  careloop.patients.contacts.contact_email_undeliverable): the next e-mail goes to
  another address or is withheld (`no_verified_address`);
- a soft bounce (status 4.x.x, or `Action: delayed`) is a note on the message only:
  the relay is still retrying;
- a complaint (ARF, a "this is spam" click) opts the patient out of that purpose by
  e-mail in the consent ledger, as an unsubscribe would;
- a mail whose subject is `unsubscribe <token>` (the List-Unsubscribe mailto) does the
  same.

Everything is processed once: a bounce acts only on a message still sent, a complaint
is stored once per message (`InboundMessage` "arf:<message id>"), an opt-out already
in force is not recorded again. Outcomes are coded words; nothing read from the mail
(an address, a diagnostic text) is logged.
"""

from __future__ import annotations

import enum
import mailbox
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.message import Message as MimeMessage
from email.parser import BytesParser, HeaderParser
from pathlib import Path

from django.db import IntegrityError, transaction

from careloop.consent.models import Channel
from careloop.core.clock import now
from careloop.outreach.message_tokens import verp_message_id
from careloop.outreach.models import InboundKind, InboundMessage, Message, MessageStatus
from careloop.outreach.timeline import message_timeline
from careloop.outreach.unsubscribe import email_opt_out, unsubscribe_message
from careloop.patients.contacts import contact_email_undeliverable
from careloop.patients.models import TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record

_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe\s+(\S+)\s*$", re.IGNORECASE)
# Headers of a report (or of the returned message) that may carry the VERP address.
_ADDRESS_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "Return-Path")
# A bounce acts on a message the relay accepted and nothing has settled since.
_BOUNCEABLE = (MessageStatus.SENT, MessageStatus.DELIVERED)


class Outcome(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    # A report already acted on, or a delivery report that is not a failure.
    NOTHING_TO_DO = "nothing_to_do"
    # A report about no message of ours (or one we cannot find).
    UNKNOWN_MESSAGE = "unknown_message"
    # Not a bounce, complaint or unsubscribe: for a person to read.
    NOT_A_REPORT = "not_a_report"


HANDLED = frozenset(Outcome) - {Outcome.NOT_A_REPORT}


@dataclass(frozen=True)
class Delivery:
    """The worst recipient line of a delivery report: `failed`/`delayed`, a status."""

    action: str
    status: str

    @property
    def hard(self) -> bool:
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def soft(self) -> bool:
        return self.status.startswith("4.") or self.action == "delayed"


def _parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)  # noqa: S101 - the default policy's class
    return parsed


def _parts(mail: EmailMessage, content_type: str) -> list[MimeMessage]:
    return [part for part in mail.walk() if part.get_content_type() == content_type]


def _delivery(mail: EmailMessage) -> Delivery | None:
    """The report's recipient lines reduced to the one that matters most."""
    found: list[Delivery] = []
    for part in _parts(mail, "message/delivery-status"):
        payload = part.get_payload()
        blocks = (
            [b for b in payload if isinstance(b, MimeMessage)] if isinstance(payload, list) else []
        )
        for block in blocks[1:]:  # the first block is per message, the rest per recipient
            match = _STATUS.match(str(block.get("Status", "")))
            action = str(block.get("Action", "")).strip().lower()
            if match is not None:
                found.append(Delivery(action, ".".join(match.groups())))
    failures = [d for d in found if d.hard] or [d for d in found if d.soft]
    return failures[0] if failures else None


def _returned_headers(mail: EmailMessage) -> list[MimeMessage]:
    """The headers of the message a report returns (as message/rfc822 or as
    text/rfc822-headers)."""
    headers: list[MimeMessage] = []
    for part in _parts(mail, "message/rfc822"):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], MimeMessage):
            headers.append(payload[0])
    for part in _parts(mail, "text/rfc822-headers"):
        text = part.get_payload(decode=True)
        if isinstance(text, bytes):
            headers.append(HeaderParser().parsestr(text.decode("utf-8", "replace")))
    return headers


def _feedback_fields(mail: EmailMessage) -> list[MimeMessage]:
    fields: list[MimeMessage] = []
    for part in _parts(mail, "message/feedback-report"):
        payload = part.get_payload()
        if isinstance(payload, list):
            fields.extend(block for block in payload if isinstance(block, MimeMessage))
        else:
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                fields.append(HeaderParser().parsestr(text.decode("utf-8", "replace")))
    return fields


def _message_about(mail: EmailMessage) -> Message | None:
    """Our message a report is about: by its VERP address, else by its Message-ID."""
    returned = _returned_headers(mail)
    texts = [str(mail.get(name, "")) for name in _ADDRESS_HEADERS]
    for headers in [*returned, *_feedback_fields(mail)]:
        texts += [str(headers.get(name, "")) for name in (*_ADDRESS_HEADERS, "Original-Mail-From")]
    message_id = verp_message_id(" ".join(texts))
    if message_id is not None:
        return Message.objects.select_related("patient").filter(pk=message_id).first()
    for headers in returned:
        original = str(headers.get("Message-ID", "")).strip()
        if original:
            found = (
                Message.objects.select_related("patient")
                .filter(provider_message_id=original, channel=Channel.EMAIL)
                .first()
            )
            if found is not None:
                return found
    return None


@transaction.atomic
def _hard_bounce(message: Message, status: str) -> Outcome:
    at = now()
    changed = Message.objects.filter(pk=message.pk, status__in=_BOUNCEABLE).update(
        status=MessageStatus.BOUNCED, status_detail=f"hard bounce {status}", updated_at=at
    )
    if not changed:
        return Outcome.NOTHING_TO_DO
    message.refresh_from_db()
    message_timeline(message)
    contact_email_undeliverable(address=message.address, reason=f"hard bounce {status}")
    return Outcome.HARD_BOUNCE


def _soft_bounce(message: Message, status: str) -> Outcome:
    detail = f"soft bounce {status}"
    changed = (
        Message.objects.filter(pk=message.pk, status__in=_BOUNCEABLE)
        .exclude(status_detail=detail)
        .update(status_detail=detail, updated_at=now())
    )
    return Outcome.SOFT_BOUNCE if changed else Outcome.NOTHING_TO_DO


@transaction.atomic
def _complaint(message: Message) -> Outcome:
    at = now()
    inbound = InboundMessage(
        provider_message_id=f"arf:{message.id}",
        channel=Channel.EMAIL,
        kind=InboundKind.OPT_OUT,
        from_address=message.address,
        body="abuse report (ARF)",
        received_at=at,
        handled_at=at,
    )
    try:
        with transaction.atomic():
            inbound.save(force_insert=True)
    except IntegrityError:
        return Outcome.NOTHING_TO_DO
    inbound.patients.set([message.patient])
    timeline_add(
        patient=message.patient,
        kind=TimelineKind.MESSAGE_RECEIVED,
        summary="E-mail marked as spam by the recipient",
        at=at,
        ref_type="inbound_message",
        ref_id=str(inbound.id),
    )
    audit_record(
        action="message.receive",
        actor_kind="system",
        actor_id="email-bounces",
        patient_id=message.patient_id,
        resource_type="inbound_message",
        resource_id=str(inbound.id),
        fields=("from_address",),
    )
    email_opt_out(message_id=message.id, how="complaint")
    return Outcome.COMPLAINT


def _mailed_unsubscribe(mail: EmailMessage) -> Outcome | None:
    match = _UNSUBSCRIBE_SUBJECT.match(str(mail.get("Subject", "")))
    if match is None:
        return None
    message = unsubscribe_message(match.group(1))
    if message is None:
        return Outcome.UNKNOWN_MESSAGE
    changed = email_opt_out(message_id=message.id, how="mailto")
    return Outcome.UNSUBSCRIBE if changed else Outcome.NOTHING_TO_DO


def bounce_process(raw: bytes) -> Outcome:
    """Read one mail from the bounce mailbox and act on it, once; what it was."""
    mail = _parse(raw)
    report_type = ""
    if mail.get_content_type() == "multipart/report":
        report_type = str(mail.get_param("report-type", "")).lower()
    if report_type not in ("delivery-status", "feedback-report"):
        return _mailed_unsubscribe(mail) or Outcome.NOT_A_REPORT
    message = _message_about(mail)
    if message is None:
        return Outcome.UNKNOWN_MESSAGE
    if report_type == "feedback-report":
        return _complaint(message)
    delivery = _delivery(mail)
    if delivery is None:
        return Outcome.NOTHING_TO_DO  # a success report (delivered, relayed)
    if delivery.hard:
        return _hard_bounce(message, delivery.status)
    return _soft_bounce(message, delivery.status)


def maildir_process(folder: Path) -> dict[str, int]:
    """Process every mail waiting in a Maildir (`new` and `cur`); move handled ones to
    its `.handled` folder and the rest, for a person, to `.unhandled`. Counts per
    outcome. A mail another run moved first is skipped."""
    inbox = mailbox.Maildir(folder, factory=None, create=False)
    handled = inbox.add_folder("handled")
    unhandled = inbox.add_folder("unhandled")
    counts: dict[str, int] = {}
    for key in list(inbox.iterkeys()):
        try:
            raw = inbox.get_bytes(key)
        except KeyError:
            continue
        outcome = bounce_process(raw)
        counts[outcome] = counts.get(outcome, 0) + 1
        (handled if outcome in HANDLED else unhandled).add(raw)
        inbox.discard(key)
    return counts
