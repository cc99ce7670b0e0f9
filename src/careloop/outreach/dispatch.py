"""The dispatcher: claim due messages, check consent again, send once, record the outcome.

A claim is a lease (`lease_owner`, `lease_until`) and a fencing token on the message
row, taken under `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL and in an exclusive
transaction on SQLite; only the holder of the current token may record an outcome, so
a worker whose lease expired (and was taken over by the sweep) cannot overwrite its
successor. A message whose worker died mid-send is claimed again and sent with the same
idempotency key, which the provider recognises: a resend is not a second delivery.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import socket
import uuid
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils.crypto import get_random_string
from django_tasks_db.utils import exclusive_transaction

from careloop.consent.baa import NoActiveBaa
from careloop.consent.decisions import may_contact
from careloop.consent.models import ContactEvent
from careloop.core.clock import now
from careloop.outreach.channels import channel_for
from careloop.outreach.channels.base import PermanentFailure, TemporaryFailure
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.timeline import message_timeline
from careloop.security.audit import audit_record

logger = logging.getLogger(__name__)
# Claimed together; small, so that a slow provider does not outlive the later claims.
CLAIM_CHUNK = 10


@dataclass(frozen=True)
class Claim:
    message_id: uuid.UUID
    token: int


def new_owner() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{get_random_string(8)}"


def _due(at: datetime.datetime) -> Q:
    return Q(status=MessageStatus.QUEUED, next_attempt_at__lte=at) | Q(
        status=MessageStatus.SENDING, lease_until__lt=at
    )


def messages_claim(*, owner: str, limit: int) -> list[Claim]:
    """Lease up to `limit` due messages (queued, or sending under an expired lease)."""
    at = now()
    with exclusive_transaction():
        ids = list(
            Message.objects.filter(_due(at))
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        # The due condition again: on SQLite the lock is the exclusive transaction.
        Message.objects.filter(_due(at), id__in=ids).update(
            status=MessageStatus.SENDING,
            lease_owner=owner,
            lease_until=at + datetime.timedelta(seconds=settings.OUTREACH_LEASE_SECONDS),
            fencing_token=F("fencing_token") + 1,
            attempts=F("attempts") + 1,
            updated_at=at,
        )
        claimed = Message.objects.filter(id__in=ids, lease_owner=owner, status="sending")
        return [Claim(pk, token) for pk, token in claimed.values_list("id", "fencing_token")]


def _fenced(claim: Claim) -> Q:
    return Q(pk=claim.message_id, fencing_token=claim.token, status=MessageStatus.SENDING)


def _release(claim: Claim, **changes: object) -> bool:
    """Record an outcome if this claim still holds the message; False if it was lost."""
    released = {"lease_owner": "", "lease_until": None, "updated_at": now(), **changes}
    return Message.objects.filter(_fenced(claim)).update(**released) == 1


def backoff(attempts: int) -> float:
    """Seconds before retry `attempts`: doubling from the base, capped, with jitter so a
    provider outage does not end in every message retrying in the same second."""
    ceiling = min(
        settings.OUTREACH_RETRY_MAX_SECONDS,
        settings.OUTREACH_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1),
    )
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


@transaction.atomic
def _settle(claim: Claim, message: Message, status: MessageStatus, **changes: object) -> bool:
    """A final outcome (sent, withheld, dead) with its timeline entry, if still ours."""
    if not _release(claim, status=status, **changes):
        return False
    message.refresh_from_db()
    message_timeline(message)
    if status == MessageStatus.SENT:
        ContactEvent.objects.create(
            patient_id=message.patient_id,
            channel=message.channel,
            purpose=message.purpose,
            at=message.sent_at or now(),
        )
        audit_record(
            action="message.send",
            actor_kind="system",
            actor_id="outreach",
            patient_id=message.patient_id,
            resource_type="message",
            resource_id=str(message.id),
            fields=("address", "body"),
        )
    return True


def _retry(
    claim: Claim, message: Message, failure: TemporaryFailure, pauses: dict[str, datetime.datetime]
) -> str:
    if message.attempts >= settings.OUTREACH_MAX_ATTEMPTS:
        detail = f"gave up after {message.attempts} attempts: {failure.reason}"
        _settle(claim, message, MessageStatus.DEAD, status_detail=detail[:200])
        return "dead"
    wait = failure.retry_after if failure.retry_after is not None else backoff(message.attempts)
    retry_at = now() + datetime.timedelta(seconds=wait)
    if failure.retry_after is not None:
        # The provider asked us to slow down: the whole channel waits, not one message.
        pauses[message.channel] = retry_at
    _release(
        claim, status=MessageStatus.QUEUED, next_attempt_at=retry_at, status_detail=failure.reason
    )
    return "retry"


def message_send(claim: Claim, *, pauses: dict[str, datetime.datetime] | None = None) -> str:
    """Send one claimed message; the outcome's name (sent, withheld, deferred, paused,
    retry, dead, lost). `pauses` holds channels a provider rate-limited in this run."""
    pauses = {} if pauses is None else pauses
    message = Message.objects.select_related("patient").get(pk=claim.message_id)
    if message.fencing_token != claim.token or message.status != MessageStatus.SENDING:
        return "lost"
    at = now()
    if message.channel in pauses and pauses[message.channel] > at:
        _release(
            claim,
            status=MessageStatus.QUEUED,
            next_attempt_at=pauses[message.channel],
            attempts=F("attempts") - 1,
        )
        return "paused"
    decision = may_contact(
        message.patient,
        message.channel,
        message.purpose,
        message.content_class,
        at,
        topic=message.topic or None,
    )
    if not decision.allowed:
        if decision.retry_at is not None:
            # Quiet hours or a cap: wait, and give the attempt back.
            _release(
                claim,
                status=MessageStatus.QUEUED,
                next_attempt_at=decision.retry_at,
                send_reason=str(decision.reason),
                attempts=F("attempts") - 1,
            )
            return "deferred"
        _settle(
            claim,
            message,
            MessageStatus.WITHHELD,
            send_reason=str(decision.reason),
            status_detail=decision.detail,
        )
        return "withheld"
    try:
        provider_id = channel_for(message.channel).send(message)
    except KeyError:
        _settle(claim, message, MessageStatus.DEAD, status_detail=f"no {message.channel} channel")
        return "dead"
    except NoActiveBaa as error:
        detail = f"no active BAA for {error.vendor_name}"
        _settle(claim, message, MessageStatus.DEAD, status_detail=detail[:200])
        return "dead"
    except TemporaryFailure as failure:
        return _retry(claim, message, failure, pauses)
    except PermanentFailure as failure:
        _settle(claim, message, MessageStatus.DEAD, status_detail=failure.reason)
        return "dead"
    sent = _settle(
        claim,
        message,
        MessageStatus.SENT,
        provider_message_id=provider_id[:120],
        sent_at=now(),
        send_reason=str(decision.reason),
        status_detail="",
    )
    return "sent" if sent else "lost"


def dispatch_due(*, limit: int | None = None, owner: str | None = None) -> Counter[str]:
    """Claim and send due messages, a few at a time, up to `limit`; outcomes counted."""
    owner = owner or new_owner()
    budget = limit if limit is not None else settings.OUTREACH_DISPATCH_BATCH
    outcomes: Counter[str] = Counter()
    pauses: dict[str, datetime.datetime] = {}
    while budget > 0:
        claims = messages_claim(owner=owner, limit=min(CLAIM_CHUNK, budget))
        if not claims:
            break
        budget -= len(claims)
        for claim in claims:
            outcomes[message_send(claim, pauses=pauses)] += 1
    if outcomes:
        logger.info("outreach dispatch: %s", dict(outcomes))
    return outcomes
