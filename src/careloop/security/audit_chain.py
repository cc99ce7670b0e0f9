"""The audit log's hash chain: how an event is hashed, and how the chain is verified.

Each event's `hash` is HMAC-SHA256 over a canonical encoding of every other column of
the event, `seq` and `prev_hash` included, under a chain key derived from the
blind-index data key. The key matters: a plain SHA-256 chain can be recomputed from
the tampered event onwards by exactly the attacker the triggers do not stop (someone
with the database's credentials), while the chain key is wrapped by the master key,
which never touches the database.

`verify_chain` walks the events in `seq` order and stops at the first break:

- ``altered``: the event's columns do not match its hash (edited, or forged/inserted);
- ``gap``: seq jumps, so events before it were deleted;
- ``unlinked``: `prev_hash` is not the previous event's hash (deleted and renumbered,
  inserted, or reordered);
- ``head``: the chain-head row disagrees with the last event (the tail was cut off).
"""

from __future__ import annotations

import contextlib
import datetime
import hmac
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connection, transaction

from careloop.security import crypto

if TYPE_CHECKING:
    from careloop.security.models import AuditEvent

ENCODING_VERSION = 1
GENESIS = bytes(32)
# The columns the hash covers, in the order they are encoded (everything but `hash`).
CHAIN_COLUMNS: tuple[str, ...] = (
    "seq",
    "id",
    "at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "source_ip",
    "patient_id",
    "action",
    "resource_type",
    "resource_id",
    "fields",
    "outcome",
    "reason_digest",
    "prev_hash",
)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_NAIVE_EPOCH = datetime.datetime(1970, 1, 1)  # noqa: DTZ001 - SQLite stores naive UTC
_MICROSECOND = datetime.timedelta(microseconds=1)


def chain_key() -> bytes:
    """The HMAC key of the chain: a sub-key of the blind-index key (one HMAC per purpose)."""
    return hmac.digest(crypto.keyring.blind_key(), b"careloop-audit-chain-v1", "sha256")


def reason_digest(reason: str) -> bytes:
    """A keyed digest of a typed reason, so the chain covers it without holding its text."""
    if not reason:
        return b""
    key = hmac.digest(crypto.keyring.blind_key(), b"careloop-audit-reason-v1", "sha256")
    return hmac.digest(key, reason.encode(), "sha256")


def epoch_micros(at: datetime.datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def event_values(event: AuditEvent) -> list[Any]:
    """An event's chained values, in `CHAIN_COLUMNS` order and canonical form.

    The canonical form is what both databases can hand back cheaply, so that `verify`
    reads raw rows without the ORM: UUIDs as 32 hex digits, `at` as microseconds since
    the epoch, `fields` as a list, digests as bytes.
    """
    return [
        event.seq,
        event.id.hex,
        epoch_micros(event.at),
        event.actor_kind,
        event.actor_id,
        event.actor_label,
        event.source_ip,
        event.patient_id.hex if event.patient_id is not None else None,
        event.action,
        event.resource_type,
        event.resource_id,
        list(event.fields),
        event.outcome,
        bytes(event.reason_digest),
        bytes(event.prev_hash or b""),
    ]


def canonical(values: Sequence[Any]) -> bytes:
    """The bytes hashed for one event, from its `event_values`."""
    return orjson.dumps((ENCODING_VERSION, *values[:13], values[13].hex(), values[14].hex()))


def event_hash(key: bytes, values: Sequence[Any]) -> bytes:
    return hmac.digest(key, canonical(values), "sha256")


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    event_id: str | None
    kind: str
    detail: str

    def __str__(self) -> str:
        who = f"event seq {self.seq} (id {self.event_id})" if self.event_id else f"seq {self.seq}"
        return f"audit chain broken at {who}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class ChainReport:
    checked: int
    last_seq: int
    last_hash: bytes
    broken: ChainBreak | None
    # Events still unsealed that are older than `audit_verify`'s `unsealed_after`.
    stale_unsealed: int = 0


def verify_rows(
    rows: Iterable[tuple[bytes, Sequence[Any]]],
    *,
    key: bytes,
    start_seq: int = 1,
    start_prev: bytes = GENESIS,
    progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Check (hash, event_values) pairs in seq order; stop at the first break.

    `start_seq`/`start_prev` are what the first row must carry: seq 1 and the genesis
    hash for a full walk, or the predecessor's seq+1 and hash for a partial one.
    """
    expected_seq, prev = start_seq, start_prev
    checked = 0
    digest = hmac.digest
    for stored, values in rows:
        seq = values[0]
        if digest(key, canonical(values), "sha256") != stored:
            detail = "its columns do not match its hash (edited, moved or inserted by hand)"
            return ChainReport(checked, seq, prev, _break(seq, values, "altered", detail))
        if seq != expected_seq:
            detail = f"expected seq {expected_seq} next (events deleted)"
            return ChainReport(checked, seq, prev, _break(seq, values, "gap", detail))
        if values[14] != prev:
            detail = "prev_hash is not the previous event's hash (deleted, inserted or reordered)"
            return ChainReport(checked, seq, prev, _break(seq, values, "unlinked", detail))
        prev, expected_seq = stored, seq + 1
        checked += 1
        if progress is not None and checked % 100_000 == 0:
            progress(checked)
    return ChainReport(checked, expected_seq - 1, prev, None)


def _break(seq: int, values: Sequence[Any], kind: str, detail: str) -> ChainBreak:
    return ChainBreak(seq, str(uuid.UUID(hex=values[1])), kind, detail)


# Raw reads, one statement per engine, each returning `event_values` nearly as is: the
# ORM's per-value converters would cost more than hashing (bench/audit.py).
_POSTGRES_WALK = (
    "SELECT hash, seq, replace(id::text, '-', ''), "
    "(EXTRACT(EPOCH FROM at) * 1000000)::bigint, actor_kind, actor_id, actor_label, "
    "host(source_ip), replace(patient_id::text, '-', ''), action, resource_type, "
    "resource_id, fields::text, outcome, reason_digest, prev_hash "
    "FROM security_auditevent WHERE seq >= %s AND seq <= %s ORDER BY seq"
)
_SQLITE_WALK = (
    # CAST: the text as stored, not Django's registered (slower) datetime converter.
    "SELECT hash, seq, id, CAST(at AS TEXT), actor_kind, actor_id, actor_label, source_ip, "
    "patient_id, action, resource_type, resource_id, fields, outcome, reason_digest, "
    "prev_hash "
    "FROM security_auditevent WHERE seq >= %s AND seq <= %s ORDER BY seq"
)


def _walk(
    from_seq: int, until_seq: int | None, chunk_size: int
) -> Iterator[tuple[bytes, list[Any]]]:
    loads, fromiso = orjson.loads, datetime.datetime.fromisoformat
    sqlite = connection.vendor == "sqlite"
    sql = _SQLITE_WALK if sqlite else _POSTGRES_WALK
    # PostgreSQL streams from a server-side cursor, which lives in a transaction. On
    # SQLite one SELECT is already a snapshot, and a transaction (BEGIN IMMEDIATE here)
    # would hold off every writer for the whole walk.
    scope = contextlib.nullcontext() if sqlite else transaction.atomic()
    with scope, connection.chunked_cursor() as cursor:
        cursor.execute(sql, [from_seq, until_seq if until_seq is not None else 2**62])
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                values = list(row[1:])
                if sqlite:
                    values[2] = (fromiso(values[2]) - _NAIVE_EPOCH) // _MICROSECOND
                values[11] = loads(values[11])
                values[13] = bytes(values[13])
                values[14] = bytes(values[14])
                yield bytes(row[0]), values


def audit_verify(
    *,
    from_seq: int = 1,
    anchor: tuple[int, bytes] | None = None,
    chunk_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
    unsealed_after: float = 60.0,
) -> ChainReport:
    """Walk the stored chain from `from_seq` and report the first break, if any.

    Only sealed events are in the chain. Events still unsealed more than
    `unsealed_after` seconds after they were recorded are counted in
    `stale_unsealed`: the sealer is not running (or not keeping up), and until sealed
    an event is protected by the triggers only.

    The walk ends at the chain head read first, so events appended while it runs are
    left for the next run, and the last event walked must be the head's. A partial
    walk trusts the event before `from_seq` (its hash is the starting link). `anchor`
    is a (seq, hash) written down earlier outside the database, e.g. from an earlier
    verify's output: it catches an attacker who cut the tail and fixed the head row,
    which no check inside the database can.
    """
    from careloop.core.clock import now
    from careloop.security.models import AuditChainHead, AuditEvent

    cutoff = now() - datetime.timedelta(seconds=unsealed_after)
    stale = AuditEvent.objects.filter(hash__isnull=True, at__lt=cutoff).count()
    head = AuditChainHead.objects.filter(pk=1).values_list("seq", "hash").first()
    from_seq = max(1, from_seq)
    start_prev = GENESIS
    if from_seq > 1:
        found = AuditEvent.objects.filter(seq=from_seq - 1).values_list("hash", flat=True).first()
        if found is None:
            detail = f"there is no event {from_seq - 1} to start the walk from"
            broken = ChainBreak(from_seq - 1, None, "gap", detail)
            return ChainReport(0, from_seq - 1, GENESIS, broken)
        start_prev = bytes(found)
    until_seq = head[0] if head is not None else None
    report = verify_rows(
        _walk(from_seq, until_seq, chunk_size),
        key=chain_key(),
        start_seq=from_seq,
        start_prev=start_prev,
        progress=progress,
    )
    report = replace(report, stale_unsealed=stale)
    if report.broken is not None:
        return report
    if head is None and report.last_seq > 0:
        detail = "the chain head row is missing (deleted by hand)"
        return replace(report, broken=ChainBreak(report.last_seq, None, "head", detail))
    if head is not None and (head[0] != report.last_seq or bytes(head[1]) != report.last_hash):
        detail = f"the chain head is at seq {head[0]}, the last event at {report.last_seq}"
        return replace(report, broken=ChainBreak(report.last_seq, None, "head", detail))
    if anchor is not None:
        seq, expected = anchor
        stored = AuditEvent.objects.filter(seq=seq).values_list("id", "hash").first()
        if stored is None or stored[1] is None or bytes(stored[1]) != expected:
            detail = "does not match the anchor written down earlier (chain rebuilt or cut)"
            event_id = str(stored[0]) if stored else None
            return replace(report, broken=ChainBreak(seq, event_id, "anchor", detail))
    return report
