"""Web Push through the outbox and the dispatcher to a loopback push service.

The push service checks the VAPID signature against the key the browser subscribed
with, and the browser decrypts the payload with the key pair it made: what the tests
read is what the patient's browser would show.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest

from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.core import clock
from careloop.outreach.channels import channel_for
from careloop.outreach.dispatch import dispatch_due
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.outreach.templates import templates_install_builtin
from careloop.patients.models import Patient
from careloop.portal.models import PushDelivery, PushSubscription
from tests.outreach.conftest import NOON, advance, reachable_patient
from tests.portal.builders import prefer, subscribed_browser
from tests.portal.push_service import PushService, push_service_running, vapid_key_pair

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vendors")]

TITLE = "Riverbend Family Health"
NOTICE = "You have a new secure message from Riverbend Family Health."
RESULT = "Rosa, your hemoglobin A1c result is 9.1%. Dr. Chen would like to see you."


@pytest.fixture
def push_service(settings: Any) -> Iterator[PushService]:
    yield from push_service_running(settings)


@pytest.fixture(autouse=True)
def _templates() -> None:
    templates_install_builtin()


def push(patient: Patient, content_class: ContentClass = ContentClass.GENERIC) -> Message:
    return message_enqueue(
        patient=patient,
        channel=Channel.PUSH,
        purpose=Purpose.CARE_REMINDER,
        content_class=content_class,
        template_id="secure-message-notice",
        template_version=1,
        rendered=Rendered(subject=TITLE, body=NOTICE),
    )


def test_a_sensitive_message_reaches_the_browser_as_a_generic_encrypted_notice(
    push_service: PushService,
) -> None:
    rosa = reachable_patient()
    prefer(rosa, "push", "sms")
    subscribed_browser(rosa, push_service)
    message_enqueue(
        patient=rosa,
        channel=Channel.PORTAL,
        purpose=Purpose.CARE_REMINDER,
        content_class=ContentClass.SENSITIVE,
        template_id="lab-result-note",
        template_version=1,
        rendered=Rendered(subject="Your A1c result", body=RESULT),
    )

    assert dispatch_due() == {"sent": 2}, "the portal message, then its notice"

    notice = Message.objects.get(template_id="secure-message-notice")
    assert (notice.channel, notice.content_class) == ("push", "generic")
    [delivered] = push_service.delivered
    shown = delivered.notification
    assert shown == {
        "title": TITLE,
        "body": NOTICE,
        "tag": str(notice.id),
        "url": "/portal/",
    }
    for secret in ("A1c", "9.1", "Rosa", "Delgado", "Chen"):
        assert secret not in json.dumps(shown)
    # Signed for this push service's origin, by a contact the service can write to.
    assert delivered.claims["aud"] == push_service.origin
    assert delivered.claims["sub"] == "mailto:care@riverbend.example"
    assert delivered.headers["topic"] == notice.id.hex
    assert int(delivered.headers["ttl"]) > 0
    notice.refresh_from_db()
    assert notice.status == MessageStatus.SENT
    assert notice.provider_message_id.startswith("webpush:")


def test_every_live_browser_gets_it_and_a_gone_one_is_revoked(push_service: PushService) -> None:
    rosa = reachable_patient()
    _, phone, _ = subscribed_browser(rosa, push_service)
    _, laptop, _ = subscribed_browser(rosa, push_service)
    push_service.drop(laptop)
    message = push(rosa)

    assert dispatch_due() == {"sent": 1}

    assert [d.notification["tag"] for d in push_service.delivered] == [str(message.id)]
    gone = PushSubscription.objects.get(revoked_at__isnull=False)
    assert (gone.revoke_reason, gone.endpoint) == ("gone", laptop["endpoint"])
    live = PushSubscription.objects.get(revoked_at__isnull=True)
    assert live.endpoint == phone["endpoint"]


def test_when_the_only_subscription_is_gone_the_message_is_dead_and_push_stops(
    push_service: PushService,
) -> None:
    rosa = reachable_patient()
    _, sent, _ = subscribed_browser(rosa, push_service)
    push_service.drop(sent)
    message = push(rosa)

    assert dispatch_due() == {"dead": 1}

    message.refresh_from_db()
    assert message.status_detail == "push no live subscription"
    assert PushSubscription.objects.get().revoke_reason == "gone"
    later = push(rosa)
    assert (later.status, later.scheduled_reason) == ("withheld", "no_verified_address")


def test_a_rate_limited_push_waits_for_retry_after_and_is_then_delivered_once(
    push_service: PushService,
) -> None:
    rosa = reachable_patient()
    subscribed_browser(rosa, push_service)
    message = push(rosa)
    push_service.fail_next(429, retry_after=120)

    assert dispatch_due() == {"retry": 1}

    message.refresh_from_db()
    assert (message.status, message.status_detail) == ("queued", "push 429 rate limited")
    assert message.next_attempt_at == NOON + datetime.timedelta(seconds=120)
    assert dispatch_due() == {}, "not before the push service said"
    with advance(121):
        assert dispatch_due() == {"sent": 1}
    assert len(push_service.delivered) == 1
    assert [status for status, _ in push_service.answers] == [429, 201]


def test_a_push_service_error_is_retried_later(push_service: PushService) -> None:
    rosa = reachable_patient()
    subscribed_browser(rosa, push_service)
    message = push(rosa)
    push_service.fail_next(503)

    assert dispatch_due() == {"retry": 1}

    message.refresh_from_db()
    assert (message.status, message.status_detail) == ("queued", "push 503")
    assert message.next_attempt_at > NOON
    with clock.frozen(message.next_attempt_at):
        assert dispatch_due() == {"sent": 1}


def test_a_resend_after_a_crash_does_not_push_twice(push_service: PushService) -> None:
    rosa = reachable_patient()
    subscribed_browser(rosa, push_service)
    message = push(rosa)
    channel = channel_for(Channel.PUSH)

    first = channel.send(message)
    again = channel.send(message)  # the worker died before recording the first

    assert first == again
    assert len(push_service.delivered) == 1
    assert PushDelivery.objects.filter(message=message).count() == 1


def test_push_carries_generic_content_only(push_service: PushService) -> None:
    rosa = reachable_patient()
    subscribed_browser(rosa, push_service)
    push(rosa, ContentClass.LOGISTICS)

    assert dispatch_due() == {"dead": 1}

    assert Message.objects.get().status_detail == "push carries generic content only, not logistics"
    assert push_service.answers == []


def test_a_message_signed_with_another_key_is_refused_by_the_push_service(
    push_service: PushService, settings: Any
) -> None:
    rosa = reachable_patient()
    subscribed_browser(rosa, push_service)
    settings.VAPID_PRIVATE_KEY, settings.VAPID_PUBLIC_KEY = vapid_key_pair()
    message = push(rosa)

    assert dispatch_due() == {"dead": 1}

    message.refresh_from_db()
    assert message.status_detail == "push refused 401"
    assert push_service.answers == [(401, "bad vapid")]
    assert PushSubscription.objects.get().revoked_at is None, "the browser did not go away"


def test_a_named_push_vendor_needs_a_baa_in_force(push_service: PushService, settings: Any) -> None:
    rosa = reachable_patient()
    subscribed_browser(rosa, push_service)
    settings.PUSH_VENDOR = "Push relay"
    push(rosa)

    assert dispatch_due() == {"dead": 1}

    assert Message.objects.get().status_detail == "no active BAA for Push relay"
    assert push_service.answers == []
