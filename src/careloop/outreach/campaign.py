"""Population campaigns: the contact decision and the outbox for a whole population at once.

`message_enqueue` costs a few queries per message, which is right for a journey step
and far too slow for a care-gap recall to a million patients. Here the same rules run
set-based:

- `contact_decisions` loads every patient's contact facts (careloop.consent.decisions
  `ContactFacts`) in one statement (careloop.outreach.campaign_facts), then runs
  `decide`, the very rule table `may_contact` runs, once per distinct set of facts.
  It agrees with `may_contact` patient for patient (tests/outreach/test_campaign.py
  proves it over a varied population).
- `campaign_enqueue` decides, renders, seals and bulk-inserts the messages (COPY on
  PostgreSQL, executemany on SQLite) in one transaction with one audit event for the
  run. Each message's idempotency key is `campaign:<key>:<patient id>`, so a campaign
  run twice (or by two workers at once) writes each patient's message once.

A withheld message is stored, withheld, with its reason, so the dry-run counts and the
message log show who was not contacted and why; it carries no address or body, since
nothing will be sent (minimum necessary). The dispatcher decides again at send time
(careloop.outreach.dispatch), as for any message.
"""

from __future__ import annotations

import datetime
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Model

from careloop.consent.decisions import Ask, Decision, decide
from careloop.consent.models import Channel, ContentClass, Purpose, RestrictedTopic
from careloop.core.bulk import adapters, insert_rows, model_field
from careloop.core.clock import now
from careloop.outreach.campaign_facts import (
    Facts,
    Population,
    contact_facts,
    id_chunk,
    id_param,
    id_text,
    id_text_sql,
)
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.outbox import ADDRESS_SOURCE, Rendered, phone_e164
from careloop.patients.models import ContactPoint, ContactSystem, Patient
from careloop.security import crypto
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Op, Resource, require

KEY_PREFIX = "campaign"
# The idempotency key column holds 80 characters: "campaign:" + key + ":" + a UUID.
MAX_CAMPAIGN_KEY = 80 - len(KEY_PREFIX) - 2 - 36
# From this many patients on, batches are prepared by a thread while the previous one
# is copied in (see campaign_enqueue).
PIPELINE_MIN = 20_000


def _decide_all(facts: dict[str, Facts], ask: Ask) -> dict[str, Decision]:
    """`decide` for every patient, run once per distinct set of facts."""
    decided: dict[Facts, Decision] = {}
    decisions: dict[str, Decision] = {}
    for patient_id, known in facts.items():
        decision = decided.get(known)
        if decision is None:
            decision = decided[known] = decide(known, ask)
        decisions[patient_id] = decision
    return decisions


def contact_decisions(
    patients: Population,
    *,
    channel: Channel | str,
    purpose: Purpose | str,
    content_class: ContentClass | str,
    at: datetime.datetime,
    topic: RestrictedTopic | str | None = None,
) -> dict[uuid.UUID, Decision]:
    """`may_contact` for every patient of the population, set-based; by patient id."""
    ask = Ask.of(channel, purpose, content_class, at, topic)
    decisions = _decide_all(contact_facts(patients, ask), ask)
    return {uuid.UUID(patient_id): decision for patient_id, decision in decisions.items()}


# --- the campaign -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    """What a campaign template may say about one patient (class I: it names them)."""

    patient_id: str
    given_name: str
    preferred_name: str | None
    language: str


Render = Callable[[Recipient], Rendered]


@dataclass
class CampaignRun:
    """What one run wrote: messages per decision reason, and the patients skipped
    because an earlier run (or a twin running at once) already wrote theirs."""

    campaign_key: str
    counts: Counter[str] = field(default_factory=Counter)
    already: int = 0
    decide_seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def written(self) -> int:
        return sum(self.counts.values())


def campaign_idempotency_key(campaign_key: str, patient_id: uuid.UUID | str) -> str:
    return f"{KEY_PREFIX}:{campaign_key}:{patient_id}"


def _status(decision: Decision, at: datetime.datetime) -> tuple[str, datetime.datetime, str]:
    """(status, next attempt, detail) as `message_enqueue` stores a decision."""
    if decision.allowed:
        return MessageStatus.QUEUED, at, ""
    if decision.retry_at is not None:
        # Not now, but later: wait until the rule that said no may say yes.
        return MessageStatus.QUEUED, decision.retry_at, ""
    return MessageStatus.WITHHELD, at, decision.detail


COLUMNS = (
    "id",
    "patient",
    "purpose",
    "channel",
    "content_class",
    "template_id",
    "template_version",
    "topic",
    "language",
    "language_fallback",
    "address",
    "subject",
    "body",
    "body_html",
    "status",
    "scheduled_reason",
    "send_reason",
    "status_detail",
    "idempotency_key",
    "provider_message_id",
    "lease_owner",
    "fencing_token",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
)


class _Sealer:
    """`crypto.seal`'s envelope for many rows of one table: the key looked up once and
    the nonces drawn in one call (this loop seals two or more values per message)."""

    def __init__(self, table: str, count: int) -> None:
        self.table = table
        version = crypto.keyring.active_version()
        self.encrypt = crypto.keyring.field_key(version).encrypt
        self.header = crypto.FORMAT + version.to_bytes(4, "big")
        self.nonces = os.urandom(12 * count)
        self.used = 0

    def __call__(self, plaintext: str, column: str, row_id: str) -> bytes:
        if self.used + 12 > len(self.nonces):
            self.nonces, self.used = os.urandom(12 * 64), 0
        nonce = self.nonces[self.used : self.used + 12]
        self.used += 12
        data = crypto.associated_data(self.table, column, row_id)
        return self.header + nonce + self.encrypt(nonce, plaintext.encode(), data)


def _new_ids(count: int) -> list[tuple[str, str]]:
    """`count` random (version 4) UUIDs from one draw of the OS's randomness: each as
    `str(uuid)` (what sealing binds to) and as this database stores a UUID column."""
    raw = bytearray(os.urandom(16 * count))
    postgres = connection.vendor == "postgresql"
    ids = []
    for i in range(0, 16 * count, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80
        h = raw[i : i + 16].hex()
        text = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        ids.append((text, text if postgres else h))
    return ids


def _opener(model: type[Model], name: str) -> Callable[[Any, str], str | None]:
    """`crypto.open_sealed` for one model field, as the field would open it."""
    table, column = model._meta.db_table, model_field(model, name).column

    def open_value(sealed: Any, row_id: str) -> str | None:
        if sealed is None:
            return None
        return crypto.open_sealed(bytes(sealed), table=table, column=column, row_id=row_id)

    return open_value


def _recipients(
    patient_ids: Sequence[str], channel: Channel
) -> tuple[dict[str, Recipient], dict[str, str]]:
    """Names and languages, and each patient's best verified address for the channel
    (the one `address_for` picks: lowest rank, then id), in one statement."""
    quote = connection.ops.quote_name
    among, params = id_param(patient_ids)
    source = ADDRESS_SOURCE.get(channel)
    address_sql, address_params = "NULL, NULL", []
    join = ""
    if source is not None:
        system, flag = source
        address_sql = f"{id_text_sql('a.id')}, a.value"
        join = (
            "LEFT JOIN (SELECT patient_id, id, value, ROW_NUMBER() OVER (PARTITION BY "  # noqa: S608 - quoted model names
            "patient_id ORDER BY rank, id) AS rn FROM "
            f"{quote(ContactPoint._meta.db_table)} WHERE system = %s AND verified "
            f"AND {quote(flag)} AND patient_id {among}) a ON a.patient_id = p.id AND a.rn = 1"
        )
        address_params = [system, *params]
    statement = (
        f"SELECT {id_text_sql('p.id')}, p.given_name, p.preferred_name, "  # noqa: S608 - quoted model names
        f"p.preferred_language, {address_sql} FROM {quote(Patient._meta.db_table)} p "
        f"{join} WHERE p.id {among}"
    )
    given = _opener(Patient, "given_name")
    preferred = _opener(Patient, "preferred_name")
    value = _opener(ContactPoint, "value")
    recipients: dict[str, Recipient] = {}
    addresses: dict[str, str] = {}
    with connection.cursor() as cursor:
        # Identifiers come from the models through quote_name; values are parameters.
        cursor.execute(statement, [*address_params, *params])
        rows = cursor.fetchall()
    phone = source is not None and source[0] == ContactSystem.PHONE
    for pid, given_name, preferred_name, language, contact_id, sealed in rows:
        patient_id = id_text(pid)
        recipients[patient_id] = Recipient(
            patient_id,
            given(given_name, patient_id) or "",
            preferred(preferred_name, patient_id),
            language,
        )
        if sealed is not None:
            address = value(sealed, id_text(contact_id)) or ""
            addresses[patient_id] = phone_e164(address) if phone else address
    return recipients, addresses


@dataclass(frozen=True)
class _Plan:
    ask: Ask
    campaign_key: str
    template: tuple[str, int]
    render: Render
    stamp: datetime.datetime


def _rows(
    plan: _Plan, chunk: Sequence[str], decisions: dict[str, Decision]
) -> list[tuple[str, str, tuple[Any, ...]]]:
    """(idempotency key, reason, row) for each patient of the chunk, sealed."""
    a = adapters()
    ask = plan.ask
    to_send = [pk for pk in chunk if decisions[pk].allowed or decisions[pk].retry_at is not None]
    recipients, addresses = _recipients(to_send, ask.channel) if to_send else ({}, {})
    seal = _Sealer(Message._meta.db_table, 2 * len(chunk))
    ids = _new_ids(len(chunk))
    postgres = connection.vendor == "postgresql"
    stamp = a.dt(plan.stamp)
    constant = (ask.purpose, ask.channel, ask.content_class, *plan.template, ask.topic or "")
    statuses = {decision: _status(decision, ask.at) for decision in set(decisions.values())}
    nothing = Rendered(body="")
    rows = []
    for (message_id, db_id), patient_id in zip(ids, chunk, strict=True):
        decision = decisions[patient_id]
        status, next_at, detail = statuses[decision]
        recipient = recipients.get(patient_id)
        if status == MessageStatus.WITHHELD or recipient is None:
            # Nothing will be sent: no copy of the patient's address or name.
            language, text, address = "en", nothing, ""
        else:
            language, text = recipient.language, plan.render(recipient)
            address = addresses.get(patient_id, "")
        key = campaign_idempotency_key(plan.campaign_key, patient_id)
        reason = str(decision.reason)
        rows.append(
            (
                key,
                reason,
                (
                    db_id,
                    patient_id if postgres else patient_id.replace("-", ""),
                    *constant,
                    language,
                    False,
                    seal(address, "address", message_id),
                    None if text.subject is None else seal(text.subject, "subject", message_id),
                    seal(text.body, "body", message_id),
                    None
                    if text.body_html is None
                    else seal(text.body_html, "body_html", message_id),
                    status,
                    reason,
                    "",
                    detail,
                    key,
                    "",
                    "",
                    0,
                    0,
                    a.dt(next_at),
                    stamp,
                    stamp,
                ),
            )
        )
    return rows


def _insert(rows: list[tuple[str, str, tuple[Any, ...]]]) -> tuple[Counter[str], int]:
    """Insert the rows; those whose key a twin run took meanwhile are skipped and counted."""
    columns = [model_field(Message, name).column for name in COLUMNS]
    skipped = 0
    while rows:
        try:
            with transaction.atomic():  # a savepoint: a racing twin must not end the run
                insert_rows(Message._meta.db_table, columns, [row for _, _, row in rows])
        except IntegrityError:
            taken = _taken([key for key, _, _ in rows])
            if not taken:
                raise
            skipped += len(taken)
            rows = [row for row in rows if row[0] not in taken]
            continue
        return Counter(reason for _, reason, _ in rows), skipped
    return Counter(), skipped


def _taken(keys: list[str]) -> set[str]:
    """The idempotency keys among `keys` that the outbox holds already."""
    if connection.vendor == "postgresql":
        held = Message.objects.filter(idempotency_key__anyof=keys)
    else:
        held = Message.objects.filter(idempotency_key__in=keys)
    return set(held.values_list("idempotency_key", flat=True))


def campaign_enqueue(
    *,
    patients: Population,
    template_key: str,
    channel: Channel | str,
    purpose: Purpose | str,
    content_class: ContentClass | str,
    at: datetime.datetime,
    campaign_key: str,
    render: Render,
    template_version: int = 1,
    topic: RestrictedTopic | str | None = None,
    actor: User | None = None,
) -> CampaignRun:
    """Decide, render and enqueue one message per patient of the population.

    Allowed messages are queued for `at`, "not now" ones (quiet hours, a cap) for when
    the rule may say yes, the rest stored withheld with the reason. `render` writes
    one patient's text (careloop.outreach.templates). `actor` is the staff user who
    started the campaign; None is the system (a scheduled recall).
    """
    if not campaign_key or len(campaign_key) > MAX_CAMPAIGN_KEY or ":" in campaign_key:
        raise ValueError(f"a campaign key is 1 to {MAX_CAMPAIGN_KEY} characters, without ':'")
    if actor is not None:
        require(actor, Op.WRITE, Resource.MESSAGES)
    ask = Ask.of(channel, purpose, content_class, at, topic)
    run = CampaignRun(campaign_key)
    began = time.monotonic()
    decisions = _decide_all(contact_facts(patients, ask), ask)
    run.decide_seconds = time.monotonic() - began
    plan = _Plan(ask, campaign_key, (template_key, template_version), render, now())
    began = time.monotonic()
    # Outside a caller's transaction, the batches are prepared on a second connection
    # while this one copies the previous batch in: the database's work (indexes, WAL)
    # and Python's (decrypt, render, seal) overlap. Inside one, a second connection
    # would not see the caller's uncommitted rows, so the batches are made here. SQLite
    # has one writer and its test databases lock a table against a second reader while
    # it writes: there the batches are always made here.
    threaded = (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and len(decisions) >= PIPELINE_MIN
    )
    with transaction.atomic():
        for already, rows in _batches(plan, decisions, threaded=threaded):
            counts, skipped = _insert(rows)
            run.counts.update(counts)
            run.already += already + skipped
        _audit(run, actor=actor)
    run.write_seconds = time.monotonic() - began
    return run


Batch = tuple[int, list[tuple[str, str, tuple[Any, ...]]]]


def _prepare(plan: _Plan, decisions: dict[str, Decision]) -> Iterator[Batch]:
    """Per chunk of patients: how many an earlier run wrote, and the rows of the rest."""
    population = list(decisions)
    for start in range(0, len(population), id_chunk()):
        chunk = population[start : start + id_chunk()]
        keys = {campaign_idempotency_key(plan.campaign_key, pk): pk for pk in chunk}
        done = {keys[key] for key in _taken(list(keys))}
        todo = [pk for pk in chunk if pk not in done] if done else chunk
        yield len(done), _rows(plan, todo, decisions)


def _batches(plan: _Plan, decisions: dict[str, Decision], *, threaded: bool) -> Iterator[Batch]:
    """`_prepare`'s batches, made here or (threaded) by a thread a batch or two ahead."""
    if not threaded:
        yield from _prepare(plan, decisions)
        return
    ready: queue.Queue[Batch | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in _prepare(plan, decisions):
                while not stop.is_set():
                    try:
                        ready.put(batch, timeout=0.5)
                        break
                    except queue.Full:
                        continue
            ready.put(None)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            ready.put(error)
        finally:
            connections.close_all()  # this thread's own connection

    thread = threading.Thread(target=produce, name="campaign-batches", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _audit(run: CampaignRun, *, actor: User | None) -> None:
    """One event for the run: the campaign and its counts, never a patient."""
    actor_kwargs: dict[str, object] = (
        {"actor": actor} if actor is not None else {"actor_kind": "system", "actor_id": "outreach"}
    )
    counts = [f"{reason}={count}" for reason, count in sorted(run.counts.items())]
    audit_record(
        action="message.enqueue",
        resource_type="campaign",
        resource_id=run.campaign_key,
        fields=("address", "body", *counts, f"already={run.already}"),
        **actor_kwargs,  # type: ignore[arg-type]
    )
