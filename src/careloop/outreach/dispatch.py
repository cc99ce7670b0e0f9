"""The dispatcher: claim due messages, check consent again, send once, record the outcome.

A claim is a lease (`lease_owner`, `lease_until`) and a fencing token on the message
row, taken under `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL and in an exclusive
transaction on SQLite; only the holder of the current token may record an outcome, so
a worker whose lease expired (and was taken over by the sweep) cannot overwrite its
successor. Just before the provider call the holder stores the fresh allow decision
and renews its lease, under its token: a worker that lost its claim sends nothing.

A message taken over from an expired lease is *in doubt*: its worker may have died
after the provider accepted it. It is reconciled before any resend: a channel that can
ask its provider (`Reconcilable.lookup`) settles it as sent with the provider's id when
the provider has it; otherwise it goes through consent again and is sent, carrying its
idempotency key (the e-mail's Message-ID), so a receiver can tell the resend for what
it is. A send whose answer never came (`UnknownOutcome`) stays in doubt the same way.
docs/outreach-outbox.md says what this guarantees and what it cannot.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import F, Min, Q
from django.utils.crypto import get_random_string
from django_tasks_db.utils import exclusive_transaction

from careloop.consent.baa import NoActiveBaa
from careloop.consent.decisions import Decision, may_contact
from careloop.consent.models import ContactEvent
from careloop.core.clock import now
from careloop.outreach.channels import channel_for
from careloop.outreach.channels.base import (
    Channel,
    PermanentFailure,
    Reconcilable,
    TemporaryFailure,
    UnknownOutcome,
)
from careloop.outreach.inbound import status_receive
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.timeline import message_timeline
from careloop.security.audit import audit_record

logger = logging.getLogger(__name__)
# Claimed together; small, so that a slow provider does not outlive the later claims.
CLAIM_CHUNK = 10
# Consecutive database failures `dispatch_until_empty` rides out (a second apart).
DATABASE_RETRIES = 30


@dataclass(frozen=True)
class Claim:
    message_id: uuid.UUID
    token: int
    # Taken over from an expired lease: it may already be with the provider.
    in_doubt: bool = False


def new_owner() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{get_random_string(8)}"


def _due(at: datetime.datetime) -> Q:
    return Q(status=MessageStatus.QUEUED, next_attempt_at__lte=at) | Q(
        status=MessageStatus.SENDING, lease_until__lt=at
    )


# PostgreSQL's claim in one statement: the two ordered scans below (expired leases
# first), each locking only the rows the LIMIT pulls from it, and the lease written
# with RETURNING. Reading the rows back is the UPDATE's own output.
_CLAIM_SQL = """
WITH due AS (
    SELECT id, doubt FROM (
        SELECT id, true AS doubt FROM {table}
        WHERE status = %(sending)s AND lease_until < %(at)s
        ORDER BY lease_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS expired
    UNION ALL
    SELECT id, doubt FROM (
        SELECT id, false AS doubt FROM {table}
        WHERE status = %(queued)s AND next_attempt_at <= %(at)s
        ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS queued
), taken AS (SELECT id, doubt FROM due LIMIT %(limit)s)
UPDATE {table} AS m
SET status = %(sending)s, lease_owner = %(owner)s, lease_until = %(until)s,
    fencing_token = m.fencing_token + 1, attempts = m.attempts + 1, updated_at = %(at)s
FROM taken WHERE m.id = taken.id
RETURNING m.id, m.fencing_token, taken.doubt
"""


def messages_claim(*, owner: str, limit: int) -> list[Claim]:
    """Lease up to `limit` due messages (queued, or sending under an expired lease)."""
    at = now()
    until = at + datetime.timedelta(seconds=settings.OUTREACH_LEASE_SECONDS)
    connection = connections[Message.objects.db]
    if connection.vendor == "postgresql":
        sql = _CLAIM_SQL.format(table=connection.ops.quote_name(Message._meta.db_table))
        params: dict[str, str | int | datetime.datetime] = {
            "sending": MessageStatus.SENDING.value,
            "queued": MessageStatus.QUEUED.value,
            "at": at,
            "until": until,
            "owner": owner,
            "limit": limit,
        }
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(sql, params)  # nosemgrep: careloop-no-string-built-sql
            rows = cursor.fetchall()
        return [Claim(pk, token, in_doubt=doubt) for pk, token, doubt in rows]
    # SQLite: the same two scans and the update, one claimer at a time (the exclusive
    # transaction is the lock). Two scans, not one OR: a database answers the OR by
    # collecting and sorting every due row on each claim (bench/outreach.py).
    with exclusive_transaction():
        doubtful = list(
            Message.objects.filter(status=MessageStatus.SENDING, lease_until__lt=at)
            .order_by("lease_until")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        queued = (
            list(
                Message.objects.filter(status=MessageStatus.QUEUED, next_attempt_at__lte=at)
                .order_by("next_attempt_at")
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[: limit - len(doubtful)]
            )
            if len(doubtful) < limit
            else []
        )
        ids = doubtful + queued
        if not ids:
            return []
        in_doubt = set(doubtful)
        # The due condition again: on SQLite the lock is the exclusive transaction.
        Message.objects.filter(_due(at), id__in=ids).update(
            status=MessageStatus.SENDING,
            lease_owner=owner,
            lease_until=until,
            fencing_token=F("fencing_token") + 1,
            attempts=F("attempts") + 1,
            updated_at=at,
        )
        claimed = Message.objects.filter(id__in=ids, lease_owner=owner, status="sending")
        return [
            Claim(pk, token, in_doubt=pk in in_doubt)
            for pk, token in claimed.values_list("id", "fencing_token")
        ]


def _fenced(claim: Claim) -> Q:
    return Q(pk=claim.message_id, fencing_token=claim.token, status=MessageStatus.SENDING)


def _release(claim: Claim, **changes: object) -> bool:
    """Record an outcome if this claim still holds the message; False if it was lost."""
    released = {"lease_owner": "", "lease_until": None, "updated_at": now(), **changes}
    return Message.objects.filter(_fenced(claim)).update(**released) == 1


def _park(claim: Claim, *, until: datetime.datetime, **changes: object) -> bool:
    """Keep a message in doubt: still `sending` under this claim's owner, with a lease
    that ends at `until`, so that whoever takes it up then reconciles it first."""
    parked = {"lease_until": until, "updated_at": now(), **changes}
    return Message.objects.filter(_fenced(claim)).update(**parked) == 1


def _send_begin(claim: Claim, decision: Decision) -> bool:
    """Store the allow decision and renew the lease just before the provider call, if
    the claim still holds. The lease outlasts the channel's timeout, so a worker whose
    lease was taken over is not still talking to the provider."""
    at = now()
    lease = datetime.timedelta(seconds=settings.OUTREACH_LEASE_SECONDS)
    begun = Message.objects.filter(_fenced(claim)).update(
        send_reason=str(decision.reason), lease_until=at + lease, updated_at=at
    )
    return begun == 1


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
    claim: Claim,
    message: Message,
    failure: TemporaryFailure,
    pauses: dict[str, datetime.datetime],
    *,
    in_doubt: bool = False,
) -> str:
    """Try again later; a message that may be with the provider stays in doubt."""
    in_doubt = in_doubt or isinstance(failure, UnknownOutcome)
    if message.attempts >= settings.OUTREACH_MAX_ATTEMPTS:
        fate = ", fate unknown" if in_doubt else ""
        detail = f"gave up after {message.attempts} attempts{fate}: {failure.reason}"
        _settle(claim, message, MessageStatus.DEAD, status_detail=detail[:200])
        return "dead"
    wait = failure.retry_after if failure.retry_after is not None else backoff(message.attempts)
    retry_at = now() + datetime.timedelta(seconds=wait)
    if failure.retry_after is not None:
        # The provider asked us to slow down: the whole channel waits, not one message.
        pauses[message.channel] = retry_at
    if in_doubt:
        _park(claim, until=retry_at, status_detail=failure.reason)
        return "in_doubt"
    _release(
        claim, status=MessageStatus.QUEUED, next_attempt_at=retry_at, status_detail=failure.reason
    )
    return "retry"


def _reconcile(
    claim: Claim, message: Message, channel: Channel, pauses: dict[str, datetime.datetime]
) -> str | None:
    """Settle an in-doubt message from the provider's own record; None when it must go
    through consent and be sent (the provider has no record, or cannot be asked)."""
    if not isinstance(channel, Reconcilable):
        # SMTP cannot be asked: the resend carries the same Message-ID instead.
        return None
    try:
        found = channel.lookup(message)
    except NoActiveBaa:
        return None  # the send dead-letters it for the same reason, asking nothing
    except TemporaryFailure as failure:
        return _retry(claim, message, failure, pauses, in_doubt=True)
    if found is None:
        return None
    settled = _settle(
        claim,
        message,
        MessageStatus.SENT,
        provider_message_id=found.provider_id[:120],
        sent_at=now(),
        status_detail="reconciled with the provider",
    )
    if not settled:
        return "lost"
    # A delivery report that came while we did not know the provider's id was dropped;
    # the provider's status stands in for it.
    status_receive(
        provider_message_id=found.provider_id, provider_status=found.status, error_code=""
    )
    return "reconciled"


def message_send(claim: Claim, *, pauses: dict[str, datetime.datetime] | None = None) -> str:
    """Send one claimed message; the outcome's name (sent, reconciled, withheld,
    deferred, paused, retry, in_doubt, dead, lost). `pauses` holds channels a provider
    rate-limited in this run."""
    pauses = {} if pauses is None else pauses
    message = Message.objects.select_related("patient").get(pk=claim.message_id)
    if message.fencing_token != claim.token or message.status != MessageStatus.SENDING:
        return "lost"
    at = now()
    paused_until = pauses.get(message.channel)
    if paused_until is not None and paused_until > at:
        refund = {"attempts": F("attempts") - 1}
        if claim.in_doubt:
            _park(claim, until=paused_until, **refund)
        else:
            _release(claim, status=MessageStatus.QUEUED, next_attempt_at=paused_until, **refund)
        return "paused"
    try:
        channel = channel_for(message.channel)
    except KeyError:
        _settle(claim, message, MessageStatus.DEAD, status_detail=f"no {message.channel} channel")
        return "dead"
    if claim.in_doubt:
        reconciled = _reconcile(claim, message, channel, pauses)
        if reconciled is not None:
            return reconciled
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
    if not _send_begin(claim, decision):
        return "lost"
    try:
        provider_id = channel.send(message)
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


def _earliest(status: MessageStatus, field: str) -> datetime.datetime | None:
    earliest: datetime.datetime | None = Message.objects.filter(status=status).aggregate(
        at=Min(field)
    )["at"]
    return earliest


def next_due_at() -> datetime.datetime | None:
    """When the next message comes due: a queued one's next attempt, or the end of a
    lease held on one being sent; None when nothing is queued or being sent."""
    times = [
        at
        for at in (
            _earliest(MessageStatus.QUEUED, "next_attempt_at"),
            _earliest(MessageStatus.SENDING, "lease_until"),
        )
        if at is not None
    ]
    return min(times, default=None)


def dispatch_until_empty(*, patience: float, owner: str | None = None) -> Counter[str]:
    """Dispatch until nothing is queued or being sent, waiting for whatever comes due
    within `patience` seconds (retries, dead workers' leases); outcomes counted.

    A database that goes away (a restart, a terminated session) is waited for: what
    this worker held stays leased and is reconciled when taken up again.
    """
    owner = owner or new_owner()
    outcomes: Counter[str] = Counter()
    failures = 0
    while True:
        try:
            outcomes.update(dispatch_due(owner=owner))
            due = next_due_at()
        except (OperationalError, InterfaceError) as error:
            failures += 1
            if failures > DATABASE_RETRIES:
                raise
            logger.warning("outreach dispatch: database unavailable (%s)", type(error).__name__)
            connections.close_all()
            time.sleep(1.0)
            continue
        failures = 0
        if due is None:
            return outcomes
        wait = (due - now()).total_seconds()
        if wait > patience:
            return outcomes
        if wait > 0:
            time.sleep(min(wait, 1.0))
