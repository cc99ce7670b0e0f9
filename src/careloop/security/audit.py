"""The audit log: `audit_record` writes one event; `audit_maintenance` is the triggers' switch.

Every read or write of PHI, every export, sign-in and permission denial calls
`audit_record` inside the transaction of the action it records, so the event commits
or rolls back with it. The write is a single INSERT and takes no lock: the event is
chained later (careloop.security.audit_chain) by `audit_seal`, which a worker runs
every second and `careloop audit verify` runs first. The sealer locks the one-row
chain head, takes the committed unsealed events in insertion order, gives them the
next seqs, links them, and advances the head, in one short transaction per batch.

Database triggers (migration 0002) refuse UPDATE, DELETE and TRUNCATE on the audit
tables unless the maintenance switch is on; see docs/audit.md for the threat model.
"""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import orjson
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connections, transaction
from django.http import HttpRequest, HttpResponse

from careloop.core.clock import now
from careloop.security import audit_chain
from careloop.security.console import CONSOLE_ACTOR_ID, ConsoleActor
from careloop.security.models import (
    AuditChainHead,
    AuditEvent,
    AuditReason,
    Role,
    User,
)

# The action vocabulary. Extending it is a decision for the lead (docs/audit.md).
ACTIONS: frozenset[str] = frozenset(
    {
        "auth.login",
        "auth.login_failed",
        "auth.logout",
        "auth.lockout",
        "auth.mfa_enrolled",
        "auth.mfa_failed",
        "auth.reauth",
        "auth.session_expired",
        "portal.register_start",
        "portal.register",
        "portal.signin_link",
        "portal.proxy_access",
        "portal.check_in_answers",
        "user.create",
        "user.disable",
        "user.enable",
        "user.role_change",
        "user.password_set",
        "user.unlock",
        "user.mfa_reset",
        "token.create",
        "token.revoke",
        "token.denied",
        "patient.list",
        "patient.search",
        "patient.view",
        "patient.create",
        "patient.update",
        "patient.merge",
        "patient.lifecycle_recompute",
        "patient.timeline_view",
        "patient.notes_view",
        "patient.note_add",
        "patient.note_edit",
        "patient.relationship_add",
        "patient.relationship_end",
        "export.csv",
        "export.ndjson",
        "access.denied",
        "access.break_glass",
        "audit.search",
        "audit.export",
        "audit.verify",
        "config.change",
        "keys.rotate",
        "api.read",
        "api.write",
        "fhir.read",
        "fhir.search",
        "fhir.export",
        "fhir.token",
        "fhir.client",
        "consent.view",
        "consent.record",
        "consent.export",
        "consent.document_publish",
        "preferences.update",
        "vendor.change",
        "demo.fill",
        "ehr.import",
        "caregaps.evaluate",
        "ehr.sync",
        "ehr.source_change",
        "ehr.quarantine_view",
        "ehr.quarantine_resolve",
        "ehr.match_view",
        "ehr.match_decide",
        "hl7.receive",
        "message.enqueue",
        "message.send",
        "message.receive",
        "message.list",
        "message.thread_start",
        "message.reply",
        "message.view",
        "message.assign",
        "message.close",
        "message.reopen",
        "message.attachment_view",
        "insurance_card.upload",
        "insurance_card.view",
        "journey.save",
        "journey.enroll",
        "journey.exit",
        "journey.dry_run",
        "appointment.confirm",
        "appointment.book",
        "appointment.reschedule",
        "appointment.cancel",
        "appointment.check_in",
        "appointment.complete",
        "appointment.no_show",
        "waitlist.request",
        "waitlist.remove",
        "waitlist.offer",
        "waitlist.claim",
        "waitlist.view",
        "telehealth.join",
        "conflict.detect",
        "conflict.resolve",
        "task.update",
        "intake.questionnaire_save",
        "intake.form_save",
        "intake.form_submit",
        "intake.response_view",
    }
)
# `careloop audit verify` fails when an event has waited this long for the sealer.
UNSEALED_ALARM_SECONDS = 60.0
_NAIVE_EPOCH = datetime.datetime(1970, 1, 1)  # noqa: DTZ001 - SQLite stores naive UTC
_MICROSECOND = datetime.timedelta(microseconds=1)
OUTCOMES: frozenset[str] = frozenset(AuditEvent.Outcome.values)
ACTOR_KINDS: frozenset[str] = frozenset(AuditEvent.ActorKind.values)


def source_address(request: HttpRequest) -> str | None:
    """The client's IP address, normalised; None when it is not a valid address.

    Behind a proxy (settings.BEHIND_PROXY) the address is the last X-Forwarded-For
    entry, the one our own proxy appended: entries to its left come from the client
    and can say anything.
    """
    raw = request.META.get("REMOTE_ADDR", "")
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            raw = hops[-1]
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    # An IPv4 client seen through a dual-stack socket is recorded as the IPv4 address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _actor_columns(
    actor: User | AnonymousUser | ConsoleActor | None, actor_kind: str | None, actor_id: str
) -> tuple[str, str, str]:
    """(actor_kind, actor_id, actor_label) for the event."""
    if isinstance(actor, ConsoleActor):
        return AuditEvent.ActorKind.SYSTEM, CONSOLE_ACTOR_ID, actor.os_user[:150]
    if isinstance(actor, User):
        if actor.role == Role.PATIENT:
            # A patient's username may be an email address: reference them by id only.
            return actor_kind or AuditEvent.ActorKind.PATIENT, actor_id or str(actor.pk), ""
        return actor_kind or AuditEvent.ActorKind.USER, actor_id or str(actor.pk), actor.username
    if actor_kind is None:
        actor_kind = (
            AuditEvent.ActorKind.ANONYMOUS if actor is not None else AuditEvent.ActorKind.SYSTEM
        )
    return actor_kind, actor_id, ""


# The hot path speaks SQL directly: the ORM's per-statement overhead would cap the
# audit log well below the 2,000 events/s that busy clinics need (bench/audit.py).
_INSERT_COLUMNS = ("id", *audit_chain.CHAIN_COLUMNS[2:14])
_INSERT_EVENT = (
    "INSERT INTO security_auditevent (id, at, actor_kind, actor_id, actor_label, source_ip, "
    "patient_id, action, resource_type, resource_id, fields, outcome, reason_digest) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_FIELDS = {field.attname: field for field in AuditEvent._meta.concrete_fields}


def _insert(event: AuditEvent, using: str) -> None:
    connection = connections[using]
    params = [
        _FIELDS[column].get_db_prep_save(getattr(event, column), connection)
        for column in _INSERT_COLUMNS
    ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_EVENT, params)
    event._state.adding = False
    event._state.db = using


# --- the sealer ---------------------------------------------------------------------------

_HEAD_LOCK = {
    "postgresql": "SELECT seq, hash FROM security_auditchainhead WHERE id = 1 FOR UPDATE",
    "sqlite": "SELECT seq, hash FROM security_auditchainhead WHERE id = 1",
}
_HEAD_ADVANCE = "UPDATE security_auditchainhead SET seq = %s, hash = %s WHERE id = 1"
# The unsealed events in insertion order, each column read exactly as verify reads it
# (audit_chain._POSTGRES_WALK / _SQLITE_WALK), so the hash is computed over what verify
# will recompute.
_POSTGRES_UNSEALED = (
    "SELECT rid, replace(id::text, '-', ''), "
    "(EXTRACT(EPOCH FROM at) * 1000000)::bigint, actor_kind, actor_id, actor_label, "
    "host(source_ip), replace(patient_id::text, '-', ''), action, resource_type, "
    "resource_id, fields::text, outcome, reason_digest "
    "FROM security_auditevent WHERE hash IS NULL ORDER BY rid LIMIT %s"
)
_SQLITE_UNSEALED = (
    "SELECT rowid, id, CAST(at AS TEXT), actor_kind, actor_id, actor_label, source_ip, "
    "patient_id, action, resource_type, resource_id, fields, outcome, reason_digest "
    "FROM security_auditevent WHERE hash IS NULL ORDER BY rowid LIMIT %s"
)
_POSTGRES_SEAL = (
    "UPDATE security_auditevent AS e SET seq = s.seq, prev_hash = s.prev_hash, hash = s.hash "
    "FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[]) "
    "AS s(rid, seq, prev_hash, hash) WHERE e.rid = s.rid"
)
_SQLITE_SEAL = "UPDATE security_auditevent SET seq = %s, prev_hash = %s, hash = %s WHERE rowid = %s"


def _lock_head(using: str) -> tuple[int, bytes]:
    """The chain head's (seq, hash), locked for this transaction; rebuilt if absent."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(_HEAD_LOCK.get(connection.vendor, _HEAD_LOCK["postgresql"]))
        row = cursor.fetchone()
    if row is not None:
        return int(row[0]), bytes(row[1])
    # First seal ever, or the head row was lost (a test flush): continue from the last
    # sealed event, so a lost head can never restart the chain at seq 1.
    last = (
        AuditEvent.objects.using(using)
        .filter(seq__isnull=False)
        .order_by("-seq")
        .values_list("seq", "hash")
        .first()
    )
    seq, top = (last[0], bytes(last[1])) if last and last[1] else (0, audit_chain.GENESIS)
    AuditChainHead.objects.using(using).bulk_create(
        [AuditChainHead(pk=1, seq=seq or 0, hash=top)], ignore_conflicts=True
    )
    head = AuditChainHead.objects.using(using).select_for_update().get(pk=1)
    return head.seq, bytes(head.hash)


def _seal_batch(using: str, limit: int) -> int:
    """Chain up to `limit` committed unsealed events after the head; how many."""
    connection = connections[using]
    postgres = connection.vendor == "postgresql"
    loads, fromiso = orjson.loads, datetime.datetime.fromisoformat
    with transaction.atomic(using=using):
        seq, prev = _lock_head(using)
        with connection.cursor() as cursor:
            cursor.execute(_POSTGRES_UNSEALED if postgres else _SQLITE_UNSEALED, [limit])
            rows = cursor.fetchall()
        if not rows:
            return 0
        key = audit_chain.chain_key()
        digest = hmac.digest
        canonical = audit_chain.canonical
        rids: list[int] = []
        seqs: list[int] = []
        prevs: list[bytes] = []
        hashes: list[bytes] = []
        for row in rows:
            seq += 1
            values = [seq, *row[1:]]
            if not postgres:
                values[2] = (fromiso(values[2]) - _NAIVE_EPOCH) // _MICROSECOND
            values[11] = loads(values[11])
            values[13] = bytes(values[13])
            values.append(prev)
            prev = digest(key, canonical(values), "sha256")
            rids.append(int(row[0]))
            seqs.append(seq)
            prevs.append(values[14])
            hashes.append(prev)
        with connection.cursor() as cursor:
            if postgres:
                cursor.execute(_POSTGRES_SEAL, [rids, seqs, prevs, hashes])
            else:
                cursor.executemany(_SQLITE_SEAL, list(zip(seqs, prevs, hashes, rids, strict=True)))
            cursor.execute(_HEAD_ADVANCE, [seq, prev])
    return len(rows)


def audit_seal(*, limit: int = 10_000, using: str = "default") -> int:
    """Chain every committed unsealed event, in insertion order; how many were sealed.

    Each batch of up to `limit` events is one transaction that holds the chain head's
    lock, so concurrent sealers take turns and seq stays gapless. Only committed events
    are visible, so an event whose transaction commits after a seal (it may have been
    inserted before events already sealed) is simply sealed by the next run, with a
    later seq: seq is sealing order, which is what verify checks. Runs every second on
    a worker (security.audit_seal) and before `careloop audit verify`.
    """
    total = 0
    while True:
        sealed = _seal_batch(using, limit)
        total += sealed
        if sealed < limit:
            return total


def audit_unsealed(*, older_than: float = UNSEALED_ALARM_SECONDS, using: str = "default") -> int:
    """How many events have waited more than `older_than` seconds for the sealer."""
    cutoff = now() - datetime.timedelta(seconds=older_than)
    return AuditEvent.objects.using(using).filter(hash__isnull=True, at__lt=cutoff).count()


# The request being served, for events recorded below the view (selectors take the
# actor, not the request): they still get the source address.
_current_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


class AuditRequestMiddleware:
    """Makes the current request's source address available to `audit_record`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def audit_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    actor: User | AnonymousUser | ConsoleActor | None = None,
    actor_kind: str | None = None,
    actor_id: str = "",
    patient_id: uuid.UUID | None = None,
    resource_type: str = "",
    resource_id: str = "",
    fields: Sequence[str] = (),
    outcome: str = "success",
    reason: str = "",
) -> AuditEvent:
    """Append one event to the audit log, unsealed, in the caller's transaction.

    The event is chained (given its seq, prev_hash and hash) by the sealer within a
    second or two of its commit; until then the triggers alone protect it.

    `request` supplies the actor (unless `actor` is given) and the source address.
    Without an actor the event is the system's (pass `actor_kind="integration"` and the
    client id as `actor_id` for an integration, or a job name for a system job).
    A `ConsoleActor` (a `careloop` command's operator) is recorded as the system actor
    "console", labelled with the OS account that ran the command.
    `reason` is the text a person typed (e.g. to break the glass); it is stored
    encrypted beside the event, never in it. Never put PHI of class I in any other
    argument: `resource_id` is an id, `fields` are field names.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; see careloop.security.audit.ACTIONS")
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
    if actor_kind is not None and actor_kind not in ACTOR_KINDS:
        raise ValueError(f"unknown audit actor kind {actor_kind!r}")
    if isinstance(fields, str):
        raise TypeError("audit fields is a sequence of field names, not one string")
    if actor is None and request is not None:
        # Before the authentication middleware has run there is no user: anonymous.
        actor = getattr(request, "user", None) or AnonymousUser()
    kind, who, label = _actor_columns(actor, actor_kind, actor_id)
    origin = request if request is not None else _current_request.get()
    using = "default"
    # No savepoint: if the audit write fails, the action it records must fail with it.
    with transaction.atomic(using=using, savepoint=False):
        event = AuditEvent(
            id=uuid.uuid4(),
            at=now(),
            # Every value exactly as the database will hand it back, or verify would
            # hash something else: text as str, the patient id as a UUID.
            actor_kind=str(kind),
            actor_id=str(who),
            actor_label=label,
            source_ip=source_address(origin) if origin is not None else None,
            patient_id=uuid.UUID(str(patient_id)) if patient_id is not None else None,
            action=action,
            resource_type=str(resource_type),
            resource_id=str(resource_id),
            fields=[str(name) for name in fields],
            outcome=outcome,
            reason_digest=audit_chain.reason_digest(reason),
        )
        _insert(event, using)
        if reason:
            AuditReason(event=event, text=reason).save(using=using, force_insert=True)
    return event


def _set_maintenance(using: str, on: bool) -> None:
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT set_config('careloop.audit_maintenance', %s, false)",
                ["on" if on else "off"],
            )
        else:
            cursor.execute(
                "INSERT INTO security_auditmaintenance (id, enabled) VALUES (1, %s) "
                "ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled",
                [on],
            )


@contextmanager
def audit_maintenance(*, using: str = "default", job: str = "") -> Iterator[None]:
    """Let UPDATE/DELETE/TRUNCATE through the audit triggers for the block.

    For the test suite's table flush and for a deliberate archival job. The switch is
    per connection on PostgreSQL (a session setting) and database-wide on SQLite (a
    row), so keep the block short. With `job`, the use is itself audited first (as the
    system job `job`), so a person turning the switch on leaves a trace in the chain.
    """
    if job:
        audit_record(
            action="config.change",
            actor_kind=AuditEvent.ActorKind.SYSTEM,
            actor_id=job,
            resource_type="audit_maintenance",
            resource_id="on",
        )
    _set_maintenance(using, True)
    try:
        yield
    finally:
        _set_maintenance(using, False)
