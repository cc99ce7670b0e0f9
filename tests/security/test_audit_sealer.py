"""The sealer: events are inserted unchained and chained later, in one short transaction.

`audit_record` takes no lock; `audit_seal` (a worker sweep every second, and the first
step of `careloop audit verify`) gives committed unsealed events the next seqs. The
triggers let exactly that UPDATE through: seq, prev_hash and hash from NULL to values.
"""

from __future__ import annotations

import datetime
import threading
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from careloop.core.clock import frozen, now
from careloop.core.sweep import registered, sweep_now
from careloop.security.audit import audit_record, audit_seal
from careloop.security.audit_chain import audit_verify
from careloop.security.models import AuditChainHead, AuditEvent

pytestmark = pytest.mark.django_db

only_postgresql = pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="SQLite has one writer at a time: no transaction can commit out of order",
)


def record(actor_id: str = "test-job") -> AuditEvent:
    return audit_record(
        action="patient.view",
        actor_kind="system",
        actor_id=actor_id,
        patient_id=uuid.uuid4(),
        resource_type="Patient",
        fields=["name"],
    )


def sql(statement: str, params: list[object] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def refused(statement: str, params: list[object] | None = None) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        sql(statement, params)


def test_an_event_is_recorded_unsealed_and_sealed_later() -> None:
    event = record()

    assert (event.seq, event.prev_hash, event.hash) == (None, None, None)
    assert audit_seal() == 1

    sealed = AuditEvent.objects.get(pk=event.pk)
    assert sealed.seq == 1
    assert len(bytes(sealed.hash or b"")) == 32
    assert AuditChainHead.objects.get().seq == 1
    assert audit_seal() == 0
    assert audit_verify().broken is None


def test_the_sealer_works_in_batches_and_keeps_insertion_order() -> None:
    events = [record(actor_id=str(n)) for n in range(25)]

    assert audit_seal(limit=10) == 25

    sealed = list(AuditEvent.objects.order_by("seq").values_list("actor_id", "seq"))
    assert sealed == [(str(n), n + 1) for n in range(25)]
    assert len(events) == 25
    assert audit_verify().broken is None


def test_the_sweep_job_seals() -> None:
    assert "security.audit_seal" in registered()
    assert registered()["security.audit_seal"].every == datetime.timedelta(seconds=1)
    record()

    assert sweep_now("security.audit_seal")

    assert not AuditEvent.objects.filter(hash__isnull=True).exists()


def test_an_update_of_a_sealed_event_is_refused_even_to_its_chain_columns() -> None:
    record()
    audit_seal()

    refused("UPDATE security_auditevent SET action = 'patient.list'")
    refused("UPDATE security_auditevent SET hash = %s", [bytes(32)])
    refused("UPDATE security_auditevent SET seq = 7")
    refused("UPDATE security_auditevent SET seq = NULL, prev_hash = NULL, hash = NULL")


def test_an_unsealed_event_may_only_be_sealed() -> None:
    record()

    refused("UPDATE security_auditevent SET action = 'patient.list'")
    # Sealing it and changing it in the same statement.
    refused(
        "UPDATE security_auditevent SET seq = 1, prev_hash = %s, hash = %s, outcome = 'denied'",
        [bytes(32), bytes(32)],
    )
    # Only part of the seal.
    refused("UPDATE security_auditevent SET hash = %s", [bytes(32)])
    refused("UPDATE security_auditevent SET seq = 1, hash = %s", [bytes(32)])

    sql(
        "UPDATE security_auditevent SET seq = 1, prev_hash = %s, hash = %s",
        [bytes(32), bytes(32)],
    )  # NULL to values: the seal itself is allowed (the chain check is verify's job)
    refused("UPDATE security_auditevent SET hash = %s", [bytes(31) + b"\x01"])


def test_a_forged_seal_is_caught_by_verify() -> None:
    record()
    sql(
        "UPDATE security_auditevent SET seq = 1, prev_hash = %s, hash = %s",
        [bytes(32), bytes(32)],
    )
    AuditChainHead.objects.create(pk=1, seq=1, hash=bytes(32))

    report = audit_verify()

    assert report.broken is not None
    assert report.broken.kind == "altered"


def test_verify_fails_when_events_wait_for_the_sealer_for_over_a_minute() -> None:
    with frozen(now() - datetime.timedelta(minutes=5)):
        record()
    record()  # recent: the sealer's normal lag, not a failure

    assert audit_verify().stale_unsealed == 1
    with pytest.raises(CommandError, match="1 audit events unsealed .* is a worker running"):
        call_command("audit", "verify", "--no-seal")

    call_command("audit", "verify")  # seals first
    assert audit_verify().stale_unsealed == 0


@only_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_then_a_seal_make_one_verified_chain() -> None:
    writers, each = 4, 30
    start = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for _ in range(each):
                with transaction.atomic():
                    record(actor_id=f"writer-{n}")
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    start.wait()
    sealed = 0
    while any(thread.is_alive() for thread in threads):
        sealed += audit_seal(limit=7)
    for thread in threads:
        thread.join()
    sealed += audit_seal()

    assert errors == []
    assert sealed == writers * each
    report = audit_verify()
    assert report.broken is None
    assert report.checked == report.last_seq == writers * each


@only_postgresql
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_after_a_seal_is_sealed_by_the_next_one() -> None:
    inserted, release = threading.Event(), threading.Event()
    late: list[AuditEvent] = []

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                late.append(record(actor_id="late"))  # inserted first: the lower rid
                inserted.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_transaction)
    thread.start()
    assert inserted.wait(timeout=30)
    early = record(actor_id="early")  # inserted second, committed first (autocommit)

    assert audit_seal() == 1  # the late event is not committed yet: not visible
    release.set()
    thread.join()
    assert audit_seal() == 1

    assert AuditEvent.objects.get(pk=early.pk).seq == 1
    assert AuditEvent.objects.get(pk=late[0].pk).seq == 2
    report = audit_verify()
    assert report.broken is None
    assert report.checked == 2


@only_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_sealers_take_turns() -> None:
    for _ in range(50):
        record()
    errors: list[BaseException] = []

    def seal() -> None:
        try:
            audit_seal(limit=5)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=seal) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    report = audit_verify()
    assert report.broken is None
    assert report.checked == 50
