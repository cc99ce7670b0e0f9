"""Web Push (RFC 8030) to every browser the patient subscribed, signed with VAPID
(RFC 8292) and encrypted to the browser's key (RFC 8291, `aes128gcm`) by `pywebpush`.

The payload is a small JSON object the portal's service worker shows as a notification
(`portal/static/portal/sw.js`): a title, the body, a tag (the message id, so a resend
replaces rather than repeats the notification) and the portal link. Push carries
`generic` content only, checked here as well as by the templates.

Answers, per subscription: 201 delivered (recorded, so a resend after a crash skips
it); 404 or 410 the subscription is gone (revoked, coded); 429 and 5xx try again later
(429's Retry-After honoured); any other 4xx this subscription cannot take the message.
The message is sent when at least one browser accepted it; it is retried while none
has and one answered "later"; it is dead when none is left to try.

No BAA by default: the push service relays ciphertext it cannot read, and the
content is generic (docs/decisions.md). `CARELOOP_PUSH_VENDOR` names one to require.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import time
import uuid
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from py_vapid import Vapid02
from pywebpush import WebPusher, WebPushException

from careloop.consent.baa import baa_require
from careloop.consent.models import ContentClass
from careloop.core.clock import now
from careloop.outreach.channels.base import (
    Found,
    PermanentFailure,
    TemporaryFailure,
    UnknownOutcome,
)
from careloop.outreach.models import Message
from careloop.portal.models import PushDelivery, PushSubscription
from careloop.portal.push_subscriptions import push_subscription_gone
from careloop.portal.selectors import push_subscriptions_live
from careloop.portal.vapid import vapid_private_key

# Where a click on the notification leads (same origin as the service worker).
PORTAL_PATH = "/portal/"
# A VAPID token's life; push services refuse more than 24 hours.
VAPID_TOKEN_SECONDS = 12 * 60 * 60
GONE = frozenset({404, 410})


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds, given as seconds or as an HTTP date."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - now()).total_seconds())


def payload(message: Message) -> str:
    return json.dumps(
        {
            "title": message.subject or settings.PRACTICE_NAME,
            "body": message.body,
            "tag": str(message.id),
            "url": PORTAL_PATH,
        }
    )


class WebPushChannel:
    def __init__(self) -> None:
        self.vendor_name: str = settings.PUSH_VENDOR

    def send(self, message: Message) -> str:
        if self.vendor_name:
            baa_require(vendor_name=self.vendor_name, at=now())
        if message.content_class != ContentClass.GENERIC:
            raise PermanentFailure(
                f"push carries generic content only, not {message.content_class}"
            )
        if not settings.VAPID_PRIVATE_KEY:
            raise PermanentFailure("push not configured (no VAPID key)")
        found = self.lookup(message)
        if found is not None:
            # A resend after a crash: a browser already has it.
            return found.provider_id
        return self._send_to_subscriptions(message)

    def lookup(self, message: Message) -> Found | None:
        """A push service accepted it for one of the patient's browsers already."""
        delivery = PushDelivery.objects.filter(message=message).order_by("delivered_at").first()
        return Found(f"webpush:{delivery.id}", "sent") if delivery is not None else None

    def _send_to_subscriptions(self, message: Message) -> str:
        vapid = Vapid02(private_key=vapid_private_key(settings.VAPID_PRIVATE_KEY))
        data = payload(message)
        first: uuid.UUID | None = None
        later: TemporaryFailure | None = None
        refused: list[str] = []
        with requests.Session() as session:
            # A push service answers; it never sends us on elsewhere (a redirect could
            # aim the worker at an address the endpoint check never saw).
            session.max_redirects = 0
            for subscription in push_subscriptions_live(patient_id=message.patient_id):
                try:
                    response = self._post(session, vapid, subscription, message, data)
                except TemporaryFailure as failure:
                    later = later or failure
                    continue
                except PermanentFailure as failure:
                    refused.append(failure.reason)
                    continue
                status = response.status_code
                if status in (200, 201, 202):
                    delivery = self._delivered(message, subscription, response)
                    first = first or delivery
                elif status in GONE:
                    push_subscription_gone(subscription_id=subscription.id)
                elif status == 429:
                    later = TemporaryFailure(
                        "push 429 rate limited", retry_after=_retry_after(response)
                    )
                elif status >= 500:
                    later = later or TemporaryFailure(
                        f"push {status}", retry_after=_retry_after(response)
                    )
                else:
                    refused.append(str(status))
        if first is not None:
            return f"webpush:{first}"
        if later is not None:
            raise later
        if refused:
            raise PermanentFailure(f"push refused {','.join(refused)}")
        raise PermanentFailure("push no live subscription")

    @staticmethod
    def _post(
        session: requests.Session,
        vapid: Vapid02,
        subscription: PushSubscription,
        message: Message,
        data: str,
    ) -> requests.Response:
        endpoint = subscription.endpoint
        parts = urlsplit(endpoint)
        claims = {
            "sub": settings.VAPID_SUBJECT,
            "aud": f"{parts.scheme}://{parts.netloc}",
            # The push service checks this against its own clock: real time, not ours.
            "exp": int(time.time()) + VAPID_TOKEN_SECONDS,
        }
        headers = {
            **vapid.sign(claims),
            "Urgency": "normal",
            # RFC 8030 5.4: a resend replaces an undelivered copy at the push service.
            "Topic": message.id.hex,
        }
        info = {
            "endpoint": endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
        }
        try:
            pusher = WebPusher(info, requests_session=session)
            return pusher.send(  # type: ignore[no-any-return]
                data,
                headers,
                ttl=settings.PUSH_TTL_SECONDS,
                timeout=settings.PUSH_TIMEOUT_SECONDS,
            )
        except requests.ReadTimeout:
            # Sent, but no answer: the push service may have it (the tag and Topic make a
            # resend replace it rather than show twice).
            raise UnknownOutcome("push ReadTimeout") from None
        except requests.RequestException as error:
            raise TemporaryFailure(f"push {type(error).__name__}") from None
        except WebPushException:
            # Keys that cannot encrypt: validated at subscription, so a stored row changed.
            raise PermanentFailure("keys unusable") from None

    @staticmethod
    def _delivered(
        message: Message, subscription: PushSubscription, response: requests.Response
    ) -> uuid.UUID:
        delivery = PushDelivery(
            id=uuid.uuid4(),
            message=message,
            subscription=subscription,
            push_resource=response.headers.get("Location", "")[:500],
            delivered_at=now(),
        )
        try:
            with transaction.atomic():
                delivery.save(force_insert=True)
        except IntegrityError:
            return PushDelivery.objects.get(message=message, subscription=subscription).id
        return delivery.id
