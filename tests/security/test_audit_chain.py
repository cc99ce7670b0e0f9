"""The audit log is append-only in the database and `careloop audit verify` proves the chain.

Tampering is done the way an attacker with the database's credentials would: drop the
triggers, then change rows with plain SQL. The DDL is transactional on both engines,
so the test's rollback restores the triggers.
"""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from careloop.security import audit_chain
from careloop.security.audit import audit_maintenance, audit_record, audit_seal
from careloop.security.audit_chain import audit_verify
from careloop.security.models import AuditChainHead, AuditEvent, AuditReason
from careloop.security.rotation import keys_rotate

pytestmark = pytest.mark.django_db

PG = "postgresql"


def record_events(count: int, *, seal: bool = True) -> list[AuditEvent]:
    """`count` events, sealed (as the worker's sealer would a second later) and reloaded."""
    events = [
        audit_record(
            action="patient.view",
            actor_kind="system",
            actor_id="test-job",
            patient_id=uuid.uuid4(),
            resource_type="Patient",
            fields=["name", "birth_date"],
        )
        for _ in range(count)
    ]
    if not seal:
        return events
    audit_seal()
    return [AuditEvent.objects.get(pk=event.pk) for event in events]


def sql(statement: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def drop_triggers() -> None:
    """What an attacker with the database owner's credentials can do."""
    if connection.vendor == PG:
        sql("DROP TRIGGER security_auditevent_append_only ON security_auditevent")
        sql("DROP TRIGGER security_auditevent_seal_only ON security_auditevent")
    else:
        sql("DROP TRIGGER security_auditevent_no_update")
        sql("DROP TRIGGER security_auditevent_no_delete")


def verify_fails_at(seq: int, kind: str) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit", "verify")
    message = str(failure.value)
    assert failure.value.returncode == 1
    assert "\n" not in message
    assert re.search(rf"\bseq {seq}\b", message)
    assert f": {kind}:" in message
    return message


def test_a_fresh_chain_verifies_and_prints_its_head(capsys: pytest.CaptureFixture[str]) -> None:
    events = record_events(5)

    call_command("audit", "verify")

    out = capsys.readouterr().out.strip()
    assert out.startswith("audit chain intact: 5 events")
    assert out.endswith(f"head 5:{bytes(events[-1].hash).hex()}")


def test_verify_itself_is_audited() -> None:
    record_events(2)

    call_command("audit", "verify")
    audit_seal()

    last = AuditEvent.objects.order_by("-seq").first()
    assert last is not None
    assert (last.action, last.outcome, last.actor_kind) == ("audit.verify", "success", "system")


def test_events_link_to_their_predecessor_in_seq_order() -> None:
    first, second = record_events(2)

    assert (first.seq, second.seq) == (1, 2)
    assert bytes(first.prev_hash) == audit_chain.GENESIS
    assert bytes(second.prev_hash) == bytes(first.hash)


def test_update_delete_and_orm_delete_are_refused_by_the_database() -> None:
    event = record_events(1)[0]

    for attempt in (
        lambda: sql("UPDATE security_auditevent SET action = 'patient.list'"),
        lambda: sql("DELETE FROM security_auditevent"),
        lambda: AuditEvent.objects.filter(pk=event.pk).update(outcome="denied"),
        lambda: AuditEvent.objects.all()._raw_delete(connection.alias),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()

    assert AuditEvent.objects.get(pk=event.pk).action == "patient.view"


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="SQLite has no TRUNCATE statement to refuse"
)
def test_truncate_is_refused_on_postgresql() -> None:
    record_events(1)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql("TRUNCATE security_auditevent CASCADE")

    assert AuditEvent.objects.count() == 1


def test_the_maintenance_switch_lets_a_change_through_and_turns_itself_off() -> None:
    event = record_events(1)[0]

    with audit_maintenance(job="test-archival"):
        AuditEvent.objects.filter(pk=event.pk).delete()

    assert not AuditEvent.objects.filter(pk=event.pk).exists()
    trace = AuditEvent.objects.get(action="config.change")
    assert (trace.actor_id, trace.resource_type) == ("test-archival", "audit_maintenance")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.all().delete()


def test_verify_names_an_edited_event() -> None:
    events = record_events(5)
    drop_triggers()

    sql("UPDATE security_auditevent SET action = 'patient.list' WHERE seq = 3")

    message = verify_fails_at(3, "altered")
    assert str(events[2].id) in message


def test_verify_names_the_event_after_a_deleted_one() -> None:
    events = record_events(5)
    drop_triggers()

    sql("DELETE FROM security_auditevent WHERE seq = 3")

    message = verify_fails_at(4, "gap")
    assert str(events[3].id) in message


def test_verify_names_an_event_inserted_in_the_middle_with_a_plain_sha256() -> None:
    events = record_events(5)
    drop_triggers()
    # Make room at seq 3 (in two steps, so no unique seq collides on the way).
    sql("UPDATE security_auditevent SET seq = seq + 1000 WHERE seq >= 3")
    sql("UPDATE security_auditevent SET seq = seq - 999 WHERE seq >= 1003")
    event = AuditEvent(
        id=uuid.uuid4(),
        seq=3,
        at=events[2].at,
        actor_kind="user",
        actor_id="1",
        actor_label="mallory",
        action="patient.view",
        outcome="success",
        prev_hash=bytes(events[1].hash),
    )
    # The attacker knows the encoding but not the chain key: SHA-256 is all they have.
    event.hash = hashlib.sha256(audit_chain.canonical(audit_chain.event_values(event))).digest()
    event.save(force_insert=True)
    sql("UPDATE security_auditchainhead SET seq = 6")

    message = verify_fails_at(3, "altered")
    assert str(event.id) in message


def test_verify_names_the_first_of_a_reordered_pair() -> None:
    events = record_events(5)
    drop_triggers()

    sql("UPDATE security_auditevent SET seq = 1003 WHERE seq = 3")
    sql("UPDATE security_auditevent SET seq = 3 WHERE seq = 4")
    sql("UPDATE security_auditevent SET seq = 4 WHERE seq = 1003")

    message = verify_fails_at(3, "altered")
    assert str(events[3].id) in message


def test_verify_notices_a_cut_tail_through_the_chain_head() -> None:
    record_events(5)
    drop_triggers()

    sql("DELETE FROM security_auditevent WHERE seq = 5")

    verify_fails_at(4, "head")


def test_an_anchor_catches_a_chain_rebuilt_after_it() -> None:
    events = record_events(3)
    anchor = f"2:{bytes(events[1].hash).hex()}"
    drop_triggers()
    sql("DELETE FROM security_auditevent")
    AuditChainHead.objects.all().delete()
    record_events(3)  # a fresh, internally valid chain

    call_command("audit", "verify")  # nothing inside the database can tell
    with pytest.raises(CommandError, match=r"seq 2 .*: anchor:"):
        call_command("audit", "verify", "--anchor", anchor)


def test_verify_from_a_later_seq_starts_from_its_predecessor() -> None:
    record_events(6)
    drop_triggers()
    sql("UPDATE security_auditevent SET outcome = 'denied' WHERE seq = 2")

    report = audit_verify(from_seq=4)

    assert report.broken is None
    assert report.checked == 3


def test_a_reason_is_stored_encrypted_beside_the_event_and_only_its_digest_is_chained() -> None:
    reason = "Patient unconscious in ER, Jane Roe, need allergies"

    event = audit_record(
        action="access.break_glass", actor_kind="system", actor_id="test", reason=reason
    )

    assert AuditReason.objects.get(event=event).text == reason
    raw = AuditReason.objects.filter(event=event).values_list("text", flat=True).get()
    assert b"Jane" not in bytes(raw)
    assert len(bytes(event.reason_digest)) == 32
    assert "Jane" not in repr(AuditEvent.objects.filter(pk=event.pk).values().get())


def test_key_rotation_reseals_reasons_and_leaves_the_chain_intact() -> None:
    event = audit_record(
        action="access.break_glass", actor_kind="system", actor_id="test", reason="chest pain"
    )
    audit_seal()

    keys_rotate(settle_seconds=0)

    assert AuditReason.objects.get(event=event).text == "chest pain"
    assert audit_verify().broken is None


def test_a_lost_chain_head_continues_from_the_last_event() -> None:
    record_events(3)
    AuditChainHead.objects.all().delete()

    event = record_events(1)[0]

    assert event.seq == 4
    assert audit_verify().broken is None


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_can_write_audit_events_and_still_be_flushed() -> None:
    # The flush after this test passes the triggers (tests/conftest.py).
    record_events(3)
    assert AuditEvent.objects.count() == 3


def test_values_given_loosely_are_chained_as_the_database_returns_them() -> None:
    audit_record(
        action="api.read",
        actor_kind="integration",
        actor_id=42,  # type: ignore[arg-type]
        patient_id=str(uuid.uuid4()).upper(),  # type: ignore[arg-type]
        resource_id=7,  # type: ignore[arg-type]
        fields=("identifier",),
    )
    assert audit_seal() == 1

    assert audit_verify().broken is None
