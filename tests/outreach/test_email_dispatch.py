"""E-mail through the dispatcher to a real SMTP server on loopback, STARTTLS required."""

from __future__ import annotations

from typing import Any

import pytest

from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.outreach.dispatch import dispatch_due
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.patients.models import Patient
from tests.outreach.conftest import EMAIL, reachable_patient
from tests.outreach.smtp_server import Inbox

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vendors")]

TEXT = "Dear Rosa,\n\nYour visit is on Thursday at 10:30."
HTML = "<p>Dear Rosa,</p><p>Your visit is on <b>Thursday at 10:30</b>.</p>"


def email(patient: Patient, purpose: Purpose, *, html: str | None = HTML) -> Message:
    return message_enqueue(
        patient=patient,
        channel=Channel.EMAIL,
        purpose=purpose,
        content_class=ContentClass.LOGISTICS,
        template_id="visit-reminder",
        template_version=1,
        rendered=Rendered(subject="Your visit on Thursday", body=TEXT, body_html=html),
    )


def test_an_email_arrives_over_starttls_with_text_and_html_parts(smtp_tls: Inbox) -> None:
    message = email(reachable_patient(), Purpose.APPOINTMENT)
    assert dispatch_due() == {"sent": 1}

    [arrived] = smtp_tls.arrived
    assert arrived.over_tls
    assert arrived.recipients == [EMAIL]
    assert arrived.sender == "care@riverbend.example"
    mail = arrived.message
    assert mail["Subject"] == "Your visit on Thursday"
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(preferencelist=("plain",))
    rich = mail.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    assert plain.get_content().replace("\r\n", "\n").strip() == TEXT
    assert "<b>Thursday at 10:30</b>" in rich.get_content()
    assert "List-Unsubscribe" not in mail, "appointment mail is transactional"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.provider_message_id == mail["Message-ID"]
    assert message.idempotency_key in mail["Message-ID"]


def test_a_text_only_message_still_gets_an_html_part(smtp_tls: Inbox) -> None:
    email(reachable_patient(), Purpose.APPOINTMENT, html=None)
    dispatch_due()
    rich = smtp_tls.arrived[0].message.get_body(preferencelist=("html",))
    assert rich is not None and "<p>Dear Rosa,</p>" in rich.get_content()


def test_non_transactional_mail_carries_list_unsubscribe(smtp_tls: Inbox) -> None:
    email(reachable_patient(), Purpose.SURVEY)
    dispatch_due()
    header = smtp_tls.arrived[0].message["List-Unsubscribe"]
    # A signed https link and a mailto (tests/outreach/test_email_features.py).
    assert "/webhooks/email/unsubscribe?t=" in header
    assert "<mailto:care@riverbend.example?subject=unsubscribe%20" in header


def test_a_server_that_does_not_offer_starttls_gets_nothing(
    smtp_plain: Inbox, settings: Any
) -> None:
    message = email(reachable_patient(), Purpose.APPOINTMENT)
    assert dispatch_due() == {"retry": 1}
    assert smtp_plain.arrived == []
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert message.status_detail == "smtp server offers no STARTTLS"
