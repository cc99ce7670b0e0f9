"""The secure portal channel: a message posted to the patient's inbox once, and one notice
without its content on the patient's preferred channel."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.db import connection

from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.outreach.channels import channel_for
from careloop.outreach.dispatch import dispatch_due, messages_claim
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.outreach.templates import templates_install_builtin
from careloop.patients.models import Patient
from careloop.portal.models import Thread, ThreadMessage
from tests.outreach.conftest import advance, reachable_patient
from tests.outreach.fake_twilio import FakeTwilio
from tests.outreach.smtp_server import Inbox
from tests.patients.builders import make_patient
from tests.portal.builders import prefer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vendors")]

RESULT = "Rosa, your hemoglobin A1c result is 9.1%. Dr. Chen would like to see you."
SECRETS = ("A1c", "9.1", "Chen")


@pytest.fixture(autouse=True)
def _templates() -> None:
    templates_install_builtin()


def portal(patient: Patient, purpose: Purpose = Purpose.CARE_REMINDER) -> Message:
    return message_enqueue(
        patient=patient,
        channel=Channel.PORTAL,
        purpose=purpose,
        content_class=ContentClass.SENSITIVE,
        template_id="lab-result-note",
        template_version=1,
        rendered=Rendered(subject="Your A1c result", body=RESULT),
    )


def notices() -> list[Message]:
    return list(Message.objects.filter(template_id="secure-message-notice"))


def test_a_portal_message_is_posted_once_with_one_notice_even_when_sent_twice() -> None:
    rosa = reachable_patient()
    message = portal(rosa)
    channel = channel_for(Channel.PORTAL)

    first = channel.send(message)
    again = channel.send(message)  # the dispatcher resends after a crash

    assert first == again
    [posted] = ThreadMessage.objects.all()
    assert first == f"portal:{posted.id}"
    assert (posted.author_kind, posted.author, posted.body) == ("practice", None, RESULT)
    assert posted.outreach_message_id == message.id
    thread = posted.thread
    assert (thread.patient_id, thread.subject, thread.inbox) == (
        rosa.pk,
        "Your A1c result",
        "care_team",
    )
    assert thread.status == "open"
    assert len(notices()) == 1


def test_a_worker_that_died_after_posting_is_reconciled_without_a_second_post(
    provider: FakeTwilio,
) -> None:
    rosa = reachable_patient()
    prefer(rosa, "sms")
    message = portal(rosa)
    assert len(messages_claim(owner="worker-that-dies", limit=10)) == 1
    channel_for(Channel.PORTAL).send(message)  # posted; the worker dies before recording it

    with advance(settings.OUTREACH_LEASE_SECONDS + 1):
        assert dispatch_due() == {"reconciled": 1, "sent": 1}

    assert ThreadMessage.objects.count() == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.provider_message_id == f"portal:{ThreadMessage.objects.get().id}"
    assert len(provider.delivered) == 1, "one notice"


def test_the_notice_goes_on_the_preferred_channel_and_carries_no_content(
    provider: FakeTwilio, smtp_tls: Inbox
) -> None:
    rosa = reachable_patient()
    prefer(rosa, "sms", "email")
    portal(rosa)

    assert dispatch_due() == {"sent": 2}

    [notice] = notices()
    assert (notice.channel, notice.content_class, notice.purpose) == (
        "sms",
        "generic",
        "care_reminder",
    )
    [texted] = provider.delivered
    assert texted["Body"] == notice.body
    assert f"new secure message from {settings.PRACTICE_NAME}" in texted["Body"]
    for secret in SECRETS:
        assert secret not in texted["Body"]
    assert smtp_tls.arrived == [], "one notice, on one channel"


def test_the_notice_falls_back_to_the_next_channel_the_patient_may_be_reached_on(
    provider: FakeTwilio, smtp_tls: Inbox
) -> None:
    rosa = reachable_patient(sms_consent=False)
    prefer(rosa, "sms", "email")
    portal(rosa)

    assert dispatch_due() == {"sent": 2}

    [notice] = notices()
    assert notice.channel == "email"
    [mail] = smtp_tls.arrived
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "new secure message" in text
    for secret in SECRETS:
        assert secret not in text and secret not in str(mail.message["Subject"])
    assert provider.delivered == []


def test_a_sensitive_message_is_delivered_only_to_the_portal(provider: FakeTwilio) -> None:
    rosa = reachable_patient()
    prefer(rosa, "sms")
    texted = message_enqueue(
        patient=rosa,
        channel=Channel.SMS,
        purpose=Purpose.CARE_REMINDER,
        content_class=ContentClass.SENSITIVE,
        template_id="lab-result-note",
        template_version=1,
        rendered=Rendered(body=RESULT),
    )
    assert (texted.status, texted.scheduled_reason) == ("withheld", "sensitive_content_channel")
    posted = portal(rosa)

    assert dispatch_due() == {"sent": 2}

    assert Message.objects.get(pk=posted.pk).status == MessageStatus.SENT
    for secret in SECRETS:
        assert all(secret not in d["Body"] for d in provider.delivered)
    # The only readable copy is the portal's, and it is encrypted at rest.
    assert ThreadMessage.objects.get().body == RESULT
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM portal_threadmessage")
        [(sealed,)] = cursor.fetchall()
        cursor.execute("SELECT subject FROM portal_thread")
        [(subject,)] = cursor.fetchall()
    for secret in SECRETS:
        assert secret.encode() not in bytes(sealed) and secret.encode() not in bytes(subject)


def test_without_any_channel_for_the_notice_it_is_kept_withheld_with_the_reason() -> None:
    alone = make_patient("Ana", "Lopez", datetime.date(1980, 1, 1), time_zone="America/Chicago")
    portal(alone)

    assert dispatch_due() == {"sent": 1}

    [notice] = notices()
    assert (notice.status, notice.scheduled_reason) == ("withheld", "no_verified_address")
    assert ThreadMessage.objects.count() == 1


@pytest.mark.parametrize(
    ("purpose", "inbox"),
    [
        (Purpose.APPOINTMENT, "front_desk"),
        (Purpose.BILLING, "billing"),
        (Purpose.SURVEY, "care_team"),
    ],
)
def test_a_reply_is_routed_to_the_team_inbox_for_the_messages_purpose(
    purpose: Purpose, inbox: str
) -> None:
    message = portal(reachable_patient(), purpose)
    channel_for(Channel.PORTAL).send(message)
    assert Thread.objects.get().inbox == inbox
