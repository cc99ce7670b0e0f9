"""Fault tests: real worker processes killed, providers taken down, the database
cut off, webhooks replayed at once. Whatever happens: 0 messages lost, 0 sent twice,
0 sent without a fresh allow decision.

The workers are `careloop outreach dispatch --until-empty` processes sharing this
module's database (a SQLite file or a PostgreSQL database, the run's engine) with the
fault driver (tests/outreach/fault_driver.py). The SMS provider is the loopback one in
Twilio's own manner: it ignores the idempotency key, so a resend would be a second
text, and it counts what it accepted per key and per text. Seeded; the longer
campaign is bench/outreach_faults.py.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from careloop.outreach.webhooks import twilio_signature
from tests.core.test_server import free_port, scratch_environment, wait_for_healthz
from tests.outreach.fake_twilio import FakeTwilio
from tests.outreach.faults import (
    DRILL_ENV,
    KILL_POINTS,
    Site,
    Verdict,
    Worker,
    email_deliveries,
    kill_at_each,
    kill_randomly,
    number,
    reached_while_running,
    sms_deliveries,
    sms_texts,
    verdict,
)
from tests.outreach.smtp_server import self_signed, start_smtp

pytestmark = pytest.mark.slow

SEED = 20261202


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("faults")
    env, drop = scratch_environment(folder)
    env.update(DRILL_ENV)
    drill = Site(env=env, folder=folder)
    try:
        migrated = drill.careloop("migrate", "-v0")
        assert migrated.returncode == 0, migrated.stderr
        yield drill
    finally:
        drill.close()
        drop()


@pytest.fixture(autouse=True)
def _noon() -> None:
    """Not frozen: the drill's processes and the provider here run on the real clock."""


@pytest.fixture
def twilio(site: Site) -> Iterator[FakeTwilio]:
    fake = FakeTwilio(honour_idempotency_key=False).start()
    site.env.update(
        {
            "CARELOOP_SMS_BASE_URL": fake.base_url,
            "CARELOOP_SMS_ACCOUNT_SID": fake.account_sid,
            "CARELOOP_SMS_AUTH_TOKEN": fake.auth_token,
            "CARELOOP_SMS_MESSAGING_SERVICE_SID": "MG" + "1" * 32,
            "CARELOOP_SMS_WEBHOOK_BASE_URL": "",
        }
    )
    try:
        yield fake
    finally:
        site.stop_workers()
        fake.stop()


def revoke(site: Site, provider: FakeTwilio, keys: list[str], into: dict[str, int]) -> None:
    """Withdraw consent for these messages' patients, noting how much was delivered."""
    if keys:
        into.update(dict.fromkeys(keys, len(provider.delivered_keys)))
        site.drive("revoke", *keys)


def revoking_some(
    site: Site, provider: FakeTwilio, tag: str, rng: random.Random, into: dict[str, int]
) -> Callable[[Worker], None]:
    """After a kill: withdraw consent for a few of the messages the dead worker had
    claimed and the provider does not have: they must never reach it now."""

    def after_kill(dead: Worker) -> None:
        doubtful = [k for k in site.claimed_by(dead, tag) if k not in provider.delivered_keys]
        revoke(site, provider, rng.sample(doubtful, min(2, len(doubtful))), into)

    return after_kill


def finish(worker: Worker) -> None:
    assert worker.finish() == 0, worker.stderr
    assert "Traceback" not in worker.stderr


def wait_until(condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def judge(site: Site, provider: FakeTwilio, tag: str, revoked: dict[str, int]) -> Verdict:
    rows = site.messages(tag)
    return verdict(rows, sms_deliveries(provider), texts=sms_texts(provider, tag), revoked=revoked)


def test_workers_killed_at_each_point_lose_nothing_and_send_nothing_twice(
    site: Site, twilio: FakeTwilio
) -> None:
    tag, rng, revoked = "points", random.Random(SEED), {}
    site.drive("seed", "--tag", tag, "--count", "30")

    kill_at_each(
        site, twilio, KILL_POINTS, after_kill=revoking_some(site, twilio, tag, rng, revoked)
    )
    # The worker process's sweep takes up what the dead workers held.
    sweeper = site.sweeper()
    wait_until(lambda: site.settled(tag), timeout=90)
    assert sweeper.stop() == 0, sweeper.stderr
    assert "Traceback" not in sweeper.stderr

    result = judge(site, twilio, tag, revoked)
    assert result.ok, result
    rows = site.messages(tag)
    assert revoked and all(rows[k].status == "withheld" for k in revoked)
    assert any(row.status_detail == "reconciled with the provider" for row in rows.values()), (
        "a message the provider had when its worker died was settled from its record"
    )


def test_workers_killed_at_random_moments_lose_nothing_and_send_nothing_twice(
    site: Site, twilio: FakeTwilio
) -> None:
    tag, rng, revoked = "random", random.Random(SEED + 1), {}
    site.drive("seed", "--tag", tag, "--count", "40")

    def activity() -> int:
        return len(twilio.requests) + twilio.lookups

    last = kill_randomly(
        site,
        activity,
        rng,
        kills=5,
        window=8.0,
        after_kill=revoking_some(site, twilio, tag, rng, revoked),
    )
    finish(last)

    result = judge(site, twilio, tag, revoked)
    assert result.ok, result


def test_consent_withdrawn_between_claim_and_send_stops_a_live_worker(
    site: Site, twilio: FakeTwilio
) -> None:
    tag, revoked = "live", {}
    site.drive("seed", "--tag", tag, "--count", "12")
    hold = twilio.hold_next(accept=True)
    worker = site.worker()
    reached_while_running(hold, worker)
    # The worker has claimed a chunk and is waiting on the provider for the first.
    claimed = [k for k in site.claimed_by(worker, tag) if k not in twilio.delivered_keys]
    assert len(claimed) >= 4
    revoke(site, twilio, claimed[:4], revoked)
    hold.release()
    finish(worker)

    result = judge(site, twilio, tag, revoked)
    assert result.ok, result
    rows = site.messages(tag)
    assert [rows[k].send_reason for k in claimed[:4]] == ["opted_out"] * 4


@pytest.mark.skipif(
    settings.DATABASE.engine != "postgresql",
    reason="SQLite is a file in the worker's own process: there is no server to lose",
)
def test_a_worker_whose_database_sessions_are_terminated_recovers_and_finishes(
    site: Site, twilio: FakeTwilio
) -> None:
    tag, rng = "restart", random.Random(SEED + 2)
    site.drive("seed", "--tag", tag, "--count", "30")
    hold = twilio.hold_next(accept=True)
    worker = site.worker(patience=30)
    reached_while_running(hold, worker)
    # The provider has the first message; the database goes away before it is recorded.
    assert site.terminate_backends() >= 1
    hold.release()
    for _ in range(2):
        time.sleep(rng.uniform(0.2, 1.0))
        site.terminate_backends()
    finish(worker)  # it recovered and finished the batch itself

    result = judge(site, twilio, tag, {})
    assert result.ok, result
    rows = site.messages(tag)
    first = twilio.delivered_keys[0]
    assert rows[first].status_detail == "reconciled with the provider"


def test_sms_provider_down_then_up_delivers_everything_once(site: Site, twilio: FakeTwilio) -> None:
    tag = "sms-outage"
    site.drive("seed", "--tag", tag, "--count", "20")
    port = twilio.port
    twilio.stop()
    worker = site.worker(patience=30)

    def backing_off() -> bool:
        rows = site.messages(tag).values()
        return any(r.status == "queued" and r.status_detail.startswith("sms ") for r in rows)

    wait_until(backing_off)
    twilio.start(port=port)
    finish(worker)

    result = judge(site, twilio, tag, {})
    assert result.ok, result
    rows = site.messages(tag)
    assert result.outcomes == {"sent": 20}
    assert max(row.attempts for row in rows.values()) >= 2, "they were retried"


def test_smtp_down_then_up_delivers_everything_once(site: Site, tmp_path: Path) -> None:
    tag = "smtp-outage"
    cert, key = self_signed(tmp_path)
    controller, inbox = start_smtp(tls=(cert, key))
    port = controller.port
    site.env.update(
        {
            "CARELOOP_SMTP_HOST": "127.0.0.1",
            "CARELOOP_SMTP_PORT": str(port),
            "CARELOOP_SMTP_CA_FILE": str(cert),
            "CARELOOP_SMTP_FROM": "care@riverbend.example",
        }
    )
    site.drive("seed", "--tag", tag, "--count", "15", "--channel", "email")
    controller.stop()
    worker = site.worker(patience=30)

    def backing_off() -> bool:
        rows = site.messages(tag).values()
        return any(r.status == "queued" and r.status_detail.startswith("smtp ") for r in rows)

    try:
        wait_until(backing_off)
        controller, _ = start_smtp(tls=(cert, key), port=port, inbox=inbox)
        finish(worker)
    finally:
        site.stop_workers()
        controller.stop()

    rows = site.messages(tag)
    result = verdict(rows, email_deliveries(inbox))
    assert result.ok, result
    assert result.outcomes == {"sent": 15}
    assert len(inbox.arrived) == 15 and all(a.over_tls for a in inbox.arrived)


def test_webhooks_replayed_concurrently_are_processed_once(site: Site, twilio: FakeTwilio) -> None:
    tag = "hooks"
    site.drive("seed", "--tag", tag, "--count", "1")
    finish(site.worker())
    [(message_id, patient_id, sid)] = site.rows(
        "SELECT id, patient_id, provider_message_id FROM outreach_message WHERE template_id = %s",
        [f"fault-{tag}"],
    )
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    # Two web processes: the replays race across processes, not only threads.
    server = site.serve(
        port=port, env={"CARELOOP_SMS_WEBHOOK_BASE_URL": base, "CARELOOP_WEB_WORKERS": "2"}
    )
    try:
        wait_for_healthz(port=port, process=server, timeout=60)
        cert = Path(site.env["CARELOOP_VAR_DIR"]) / "tls" / "localhost.crt"
        status = {"AccountSid": twilio.account_sid, "MessageSid": sid, "MessageStatus": "delivered"}
        inbound = {
            "AccountSid": twilio.account_sid,
            "MessageSid": "SM" + "5" * 32,
            "From": number(tag, 0),
            "To": "+13125550100",
            "Body": "STOP",
        }
        reports = replay(base + "/webhooks/sms/status", status, twilio.auth_token, cert)
        replies = replay(base + "/webhooks/sms/inbound", inbound, twilio.auth_token, cert)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert [r.status_code for r in reports] == [204] * len(reports)
    assert [r.status_code for r in replies] == [200] * len(replies)
    confirmations = [r for r in replies if "<Message>" in r.text]
    assert len(confirmations) == 1, "the opt-out is confirmed once"
    assert site.rows(
        "SELECT COUNT(*) FROM outreach_inboundmessage WHERE provider_message_id = %s",
        [inbound["MessageSid"]],
    ) == [(1,)]
    assert site.rows(
        "SELECT COUNT(*) FROM consent_consentrecord WHERE patient_id = %s AND kind = 'comm_sms'"
        " AND status = 'revoked'",
        [patient_id],
    ) == [(1,)]
    assert site.rows("SELECT status FROM outreach_message WHERE id = %s", [message_id]) == [
        ("delivered",)
    ]
    assert site.rows(
        "SELECT COUNT(*) FROM patients_timelineevent WHERE ref_type = 'message' AND ref_id = %s"
        " AND summary LIKE %s",
        [str(uuid.UUID(str(message_id))), "%delivered"],
    ) == [(1,)]
    assert "Traceback" not in (site.folder / "serve.log").read_text(errors="replace")


REPLAYS = 8


def replay(url: str, params: dict[str, str], token: str, cert: Path) -> list[httpx.Response]:
    """Post the same signed webhook from several threads released at the same moment."""
    signature = twilio_signature(url=url, params=params, token=token)
    start = threading.Barrier(REPLAYS)

    def post(_: int) -> httpx.Response:
        with httpx.Client(verify=ssl.create_default_context(cafile=cert), timeout=30) as client:
            start.wait()
            return client.post(url, data=params, headers={"X-Twilio-Signature": signature})

    with ThreadPoolExecutor(REPLAYS) as pool:
        return list(pool.map(post, range(REPLAYS)))
