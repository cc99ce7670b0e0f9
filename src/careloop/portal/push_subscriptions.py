"""Web Push subscriptions: `push_subscribe`, `push_unsubscribe`, and the revocation the
push channel makes when a push service says a subscription is gone.

A subscription is the JSON a browser's `PushManager.subscribe()` gives the portal page.
careloop will later POST to its endpoint from a worker, so the endpoint is checked
strictly before it is stored: https, and a host of a known push service
(settings.PUSH_SERVICE_HOSTS), so a patient account cannot point our workers at an
internal address. Plain http to a loopback service is accepted only where
settings.PUSH_ALLOW_LOOPBACK is on (development and the tests).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import IntegrityError, transaction

from careloop.core.clock import now
from careloop.patients.models import Patient
from careloop.portal.models import PushSubscription, RevokeReason
from careloop.portal.vapid import b64url_decode
from careloop.security import crypto
from careloop.security.audit import audit_record
from careloop.security.models import User

MAX_ENDPOINT_LENGTH = 2048
LOOPBACK_HOSTS = frozenset({"localhost"})
# (marker in the lower-cased User-Agent, code), first match wins: Edge and Opera say
# "chrome" too, and everything says "safari".
BROWSERS = (
    ("edg/", "edge"),
    ("opr/", "opera"),
    ("samsungbrowser/", "samsung"),
    ("firefox/", "firefox"),
    ("fxios/", "firefox"),
    ("crios/", "chrome"),
    ("chrome/", "chrome"),
    ("safari/", "safari"),
)
PLATFORMS = (
    ("android", "android"),
    ("iphone", "ios"),
    ("ipad", "ios"),
    ("windows", "windows"),
    ("cros", "chromeos"),
    ("mac os x", "macos"),
    ("linux", "linux"),
)


class PushSubscriptionInvalid(ValueError):  # noqa: N818 - the domain's words
    """The subscription JSON cannot be used; the message names the part, never its value."""


class PushNotConfigured(Exception):  # noqa: N818 - the domain's words
    """No VAPID key is configured, so no browser can subscribe."""


@dataclass(frozen=True)
class ParsedSubscription:
    endpoint: str
    p256dh: str
    auth: str


def user_agent_code(user_agent: str) -> str:
    """Browser family and platform ("firefox/linux"): enough to tell a patient's devices
    apart in a list, without keeping a fingerprintable header."""
    lowered = user_agent.lower()
    browser = next((code for marker, code in BROWSERS if marker in lowered), "other")
    platform = next((code for marker, code in PLATFORMS if marker in lowered), "other")
    return f"{browser}/{platform}"


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint_valid(endpoint: object) -> str:
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise PushSubscriptionInvalid("endpoint must be a URL of at most 2048 characters")
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if not host or parts.username is not None or parts.password is not None:
        raise PushSubscriptionInvalid("endpoint must be a URL with a host and no credentials")
    if settings.PUSH_ALLOW_LOOPBACK and _is_loopback(host) and parts.scheme in {"http", "https"}:
        return endpoint
    if parts.scheme != "https":
        raise PushSubscriptionInvalid("endpoint must be https")
    known = settings.PUSH_SERVICE_HOSTS
    if not any(host == suffix or host.endswith("." + suffix) for suffix in known):
        raise PushSubscriptionInvalid("endpoint is not a known push service")
    return endpoint


def _key(keys: Mapping[str, object], name: str, length: int) -> str:
    value = keys.get(name)
    try:
        raw = b64url_decode(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != length:
        raise PushSubscriptionInvalid(f"keys.{name} must be {length} bytes, base64url")
    return str(value).rstrip("=")


def subscription_parse(subscription: Mapping[str, object]) -> ParsedSubscription:
    """The parts of a `PushSubscription.toJSON()` careloop needs, checked."""
    endpoint = _endpoint_valid(subscription.get("endpoint"))
    keys = subscription.get("keys")
    if not isinstance(keys, Mapping):
        raise PushSubscriptionInvalid("keys must be an object with p256dh and auth")
    p256dh = _key(keys, "p256dh", 65)
    try:
        # An uncompressed point on P-256, as browsers send it: anything else cannot
        # encrypt a payload the browser could read.
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(p256dh))
    except ValueError:
        raise PushSubscriptionInvalid("keys.p256dh is not a P-256 public key") from None
    return ParsedSubscription(endpoint=endpoint, p256dh=p256dh, auth=_key(keys, "auth", 16))


def endpoint_index(endpoint: str) -> bytes:
    # Exact, case-sensitive: endpoints end in base64 tokens.
    return crypto.blind_index(endpoint, kind="push_endpoint")


def _audit(
    *, actor: User | None, patient_id: uuid.UUID, subscription: PushSubscription, what: str
) -> None:
    who: dict[str, object] = (
        {"actor": actor} if actor is not None else {"actor_kind": "system", "actor_id": "portal"}
    )
    audit_record(
        action="preferences.update",
        patient_id=patient_id,
        resource_type="push_subscription",
        resource_id=str(subscription.id),
        fields=(what,),
        **who,  # type: ignore[arg-type]
    )


def _revoke(subscription: PushSubscription, reason: RevokeReason) -> None:
    subscription.revoked_at = now()
    subscription.revoke_reason = reason
    subscription.save(update_fields=["revoked_at", "revoke_reason"])


@transaction.atomic
def push_subscribe(
    *,
    patient: Patient,
    subscription: Mapping[str, object],
    user_agent: str = "",
    actor: User | None = None,
) -> PushSubscription:
    """Store a browser's subscription for the patient; the live row.

    The same browser subscribing again keeps its row; an endpoint held by another row
    (new keys, or another patient signed in on that browser) replaces it. `actor` is
    the patient's portal account once the portal signs people in (issue 8); None is
    the system. `PushSubscriptionInvalid` says which part is wrong.
    """
    if not settings.VAPID_PRIVATE_KEY:
        raise PushNotConfigured("push is not configured (CARELOOP_VAPID_PRIVATE_KEY)")
    parsed = subscription_parse(subscription)
    index = endpoint_index(parsed.endpoint)
    current = (
        PushSubscription.objects.select_for_update()
        .filter(endpoint_bidx=index, revoked_at__isnull=True)
        .first()
    )
    if current is not None:
        if (current.patient_id, current.p256dh, current.auth) == (
            patient.pk,
            parsed.p256dh,
            parsed.auth,
        ):
            return current
        _revoke(current, RevokeReason.REPLACED)
        _audit(actor=actor, patient_id=current.patient_id, subscription=current, what="revoked")
    stored = PushSubscription(
        id=uuid.uuid4(),
        patient=patient,
        endpoint=parsed.endpoint,
        endpoint_bidx=index,
        p256dh=parsed.p256dh,
        auth=parsed.auth,
        user_agent=user_agent_code(user_agent),
        created_at=now(),
    )
    try:
        with transaction.atomic():  # a savepoint: a twin request may have stored it first
            stored.save(force_insert=True)
    except IntegrityError:
        return PushSubscription.objects.get(endpoint_bidx=index, revoked_at__isnull=True)
    _audit(actor=actor, patient_id=patient.pk, subscription=stored, what="subscribed")
    return stored


@transaction.atomic
def push_unsubscribe(*, patient: Patient, endpoint: str, actor: User | None = None) -> bool:
    """Turn off the patient's subscription at `endpoint`; False if there was none live."""
    current = (
        PushSubscription.objects.select_for_update()
        .filter(patient=patient, endpoint_bidx=endpoint_index(endpoint), revoked_at__isnull=True)
        .first()
    )
    if current is None:
        return False
    _revoke(current, RevokeReason.UNSUBSCRIBED)
    _audit(actor=actor, patient_id=patient.pk, subscription=current, what="revoked")
    return True


@transaction.atomic
def push_subscription_gone(*, subscription_id: uuid.UUID) -> None:
    """The push service answered 404 or 410: the browser unsubscribed or the
    subscription expired, and it will never accept a message again."""
    current = (
        PushSubscription.objects.select_for_update()
        .filter(pk=subscription_id, revoked_at__isnull=True)
        .first()
    )
    if current is not None:
        _revoke(current, RevokeReason.GONE)
        _audit(actor=None, patient_id=current.patient_id, subscription=current, what="revoked")
