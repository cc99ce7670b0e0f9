#!/usr/bin/env python3
"""The outbox fault campaign: thousands of messages, many SIGKILLs, outages, replays.

The scenarios of tests/outreach/test_faults.py at scale, on a scratch database of its
own (a SQLite file, or a PostgreSQL database made and dropped with --postgres), with
real `careloop outreach dispatch --until-empty` worker processes sending to the loopback
providers (tests/outreach/fake_twilio.py in Twilio's manner: the idempotency key is
ignored, so a resend is a second text; tests/outreach/smtp_server.py with STARTTLS):

- `kill-points`: workers killed after claim, after the provider accepted, before
  marking sent, in turn, --kills times; consent withdrawn for some of each dead
  worker's claims;
- `random-kills`: workers killed at seeded random points, --kills times, each successor
  starting while its predecessor works, consent withdrawn as above;
- `sms-outage` and `smtp-outage`: the provider stopped and started --outages times
  while a worker sends;
- `db-restarts` (PostgreSQL): every session of the database terminated --outages times
  mid-batch;
- `webhooks`: every sent message's delivery report and a STOP from its patient posted
  --replays times at once to `careloop serve` with two web processes.

For each it prints the messages, their outcomes and the counts that must be 0: lost
(not settled, or dead without a reason), duplicates (deliveries per idempotency key and
per text beyond one), violations (a delivery after consent was withdrawn, or a sent
message without an allow decision), mismatches (what the provider has and what we
recorded disagree); for webhooks, effects applied more than once. Exit status 1 if
any is not 0. Not run in CI.

    python bench/outreach_faults.py [--messages 2000] [--kills 30] [--outages 4]
        [--seed 7] [--postgres postgresql://127.0.0.1:5432/postgres] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from tests.outreach.fake_twilio import FakeTwilio  # noqa: E402
from tests.outreach.faults import (  # noqa: E402
    DRILL_ENV,
    KILL_POINTS,
    Site,
    Verdict,
    Worker,
    email_deliveries,
    kill_at_each,
    kill_randomly,
    number,
    sms_deliveries,
    sms_texts,
    verdict,
)
from tests.outreach.smtp_server import free_port, self_signed, start_smtp  # noqa: E402

from careloop.outreach.webhooks import twilio_signature  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_kib / 1024 / 1024:.1f} GiB RAM, load {load:.1f}; "
        f"Python {platform.python_version()}; {platform.platform()}"
    )


@dataclass
class Outcome:
    name: str
    seconds: float
    verdict: Verdict | None = None
    # For the webhooks scenario: effects applied more than once, and posts answered.
    repeated: int = 0
    posts: int = 0
    note: str = ""

    @property
    def ok(self) -> bool:
        return (self.verdict is None or self.verdict.ok) and self.repeated == 0

    def line(self) -> str:
        if self.verdict is None:
            what = f"{self.posts} posts, effects applied twice {self.repeated}"
        else:
            what = str(self.verdict)
        note = f" ({self.note})" if self.note else ""
        return f"{self.name:<13} {self.seconds:7.1f} s  {what}{note}"


@contextmanager
def scratch_site(postgres: str | None, folder: Path) -> Iterator[Site]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(DRILL_ENV)
    env["CARELOOP_VAR_DIR"] = str(folder / "var")
    env["CARELOOP_WEB_WORKERS"] = "2"
    dropper: Callable[[], None] = lambda: None  # noqa: E731
    if postgres:
        import psycopg

        name = f"careloop_bench_faults_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        server = postgres.split("://", 1)[1].rsplit("/", 1)[0]
        env["CARELOOP_DATABASE_URL"] = f"postgres://{server}/{name}"

        def dropper() -> None:
            with psycopg.connect(postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    else:
        env["CARELOOP_DATABASE_URL"] = f"sqlite:///{folder / 'careloop.db'}"
    site = Site(env=env, folder=folder)
    try:
        migrated = site.careloop("migrate", "-v0", timeout=600)
        assert migrated.returncode == 0, migrated.stderr
        yield site
    finally:
        site.close()
        dropper()


@contextmanager
def sms_provider(site: Site) -> Iterator[FakeTwilio]:
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


def finish(site: Site, *, worker: Worker | None = None) -> None:
    """Let `worker` (or a new one) finish; a worker that died gets a successor."""
    worker = worker or site.worker(patience=60)
    if worker.finish(timeout=3600) != 0:
        again = site.worker(patience=60)
        assert again.finish(timeout=3600) == 0, again.stderr[-2000:]


def revoking_some(
    site: Site, provider: FakeTwilio, tag: str, rng: random.Random, revoked: dict[str, int]
) -> Callable[[Worker], None]:
    def after_kill(dead: Worker) -> None:
        doubtful = [k for k in site.claimed_by(dead, tag) if k not in provider.delivered_keys]
        chosen = rng.sample(doubtful, min(3, len(doubtful)))
        if chosen:
            revoked.update(dict.fromkeys(chosen, len(provider.delivered_keys)))
            site.drive("revoke", *chosen)

    return after_kill


def judged(site: Site, fake: FakeTwilio, tag: str, revoked: dict[str, int]) -> Verdict:
    return verdict(
        site.messages(tag), sms_deliveries(fake), texts=sms_texts(fake, tag), revoked=revoked
    )


# --- the scenarios ----------------------------------------------------------------------
def kill_points(site: Site, args: argparse.Namespace, rng: random.Random) -> Outcome:
    started, tag, revoked = time.monotonic(), "points", {}
    site.drive("seed", "--tag", tag, "--count", str(args.messages))
    with sms_provider(site) as fake:
        points = [KILL_POINTS[n % len(KILL_POINTS)] for n in range(args.kills)]
        kill_at_each(site, fake, points, after_kill=revoking_some(site, fake, tag, rng, revoked))
        finish(site)
        result = judged(site, fake, tag, revoked)
    note = f"{args.kills} kills, {len(revoked)} consents withdrawn"
    return Outcome("kill-points", time.monotonic() - started, result, note=note)


def random_kills(site: Site, args: argparse.Namespace, rng: random.Random) -> Outcome:
    started, tag, revoked = time.monotonic(), "random", {}
    site.drive("seed", "--tag", tag, "--count", str(args.messages))
    with sms_provider(site) as fake:
        last = kill_randomly(
            site,
            lambda: len(fake.requests) + fake.lookups,
            rng,
            kills=args.kills,
            window=10.0,
            after_kill=revoking_some(site, fake, tag, rng, revoked),
        )
        finish(site, worker=last)
        result = judged(site, fake, tag, revoked)
    note = f"{args.kills} kills, {len(revoked)} consents withdrawn"
    return Outcome("random-kills", time.monotonic() - started, result, note=note)


def sms_outage(site: Site, args: argparse.Namespace, rng: random.Random) -> Outcome:
    started, tag = time.monotonic(), "sms-outage"
    site.drive("seed", "--tag", tag, "--count", str(args.messages))
    with sms_provider(site) as fake:
        worker = site.worker(patience=120)
        for _ in range(args.outages):
            time.sleep(rng.uniform(1.0, 3.0))
            port = fake.port
            fake.stop()
            time.sleep(rng.uniform(1.0, 4.0))
            fake.start(port=port)
        finish(site, worker=worker)
        result = judged(site, fake, tag, {})
    return Outcome("sms-outage", time.monotonic() - started, result, note=f"{args.outages} outages")


def smtp_outage(site: Site, args: argparse.Namespace, rng: random.Random) -> Outcome:
    started, tag = time.monotonic(), "smtp-outage"
    cert, key = self_signed(site.folder)
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
    count = max(1, args.messages // 4)
    site.drive("seed", "--tag", tag, "--count", str(count), "--channel", "email")
    try:
        worker = site.worker(patience=120)
        for _ in range(args.outages):
            time.sleep(rng.uniform(1.0, 3.0))
            controller.stop()
            time.sleep(rng.uniform(1.0, 4.0))
            controller, _ = start_smtp(tls=(cert, key), port=port, inbox=inbox)
        finish(site, worker=worker)
    finally:
        site.stop_workers()
        controller.stop()
    result = verdict(site.messages(tag), email_deliveries(inbox))
    return Outcome(
        "smtp-outage", time.monotonic() - started, result, note=f"{args.outages} outages"
    )


def db_restarts(site: Site, args: argparse.Namespace, rng: random.Random) -> Outcome:
    started, tag = time.monotonic(), "restarts"
    site.drive("seed", "--tag", tag, "--count", str(args.messages))
    with sms_provider(site) as fake:
        workers = [site.worker(patience=60) for _ in range(2)]
        ended = 0
        for _ in range(args.outages):
            time.sleep(rng.uniform(0.5, 2.5))
            ended += site.terminate_backends()
        died = 0
        for worker in workers:
            died += worker.finish(timeout=3600) != 0
        finish(site)
        result = judged(site, fake, tag, {})
    note = f"{args.outages} restarts, {ended} sessions ended, {died} workers exited non-zero"
    return Outcome("db-restarts", time.monotonic() - started, result, note=note)


def webhooks(site: Site, args: argparse.Namespace, rng: random.Random) -> Outcome:
    """Replay the delivery report of every sent message of `random-kills`, and a STOP
    from each of their numbers, --replays times at once each."""
    started, tag = time.monotonic(), "random"
    sent = site.rows(
        "SELECT id, idempotency_key, provider_message_id FROM outreach_message"
        " WHERE template_id = %s AND status = 'sent'",
        [f"fault-{tag}"],
    )[: args.webhooks]
    account, token = "AC" + "0" * 32, "fake-auth-token"
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    server = site.serve(
        port=port,
        env={
            "CARELOOP_SMS_WEBHOOK_BASE_URL": base,
            "CARELOOP_SMS_ACCOUNT_SID": account,
            "CARELOOP_SMS_AUTH_TOKEN": token,
        },
    )
    answers: list[httpx.Response] = []
    # STOPs whose opt-out was confirmed other than exactly once.
    unconfirmed = 0
    try:
        wait_for_server(port, server)
        context = ssl.create_default_context(cafile=site.folder / "var" / "tls" / "localhost.crt")
        with httpx.Client(verify=context, timeout=60) as client:
            for _, key, sid in sent:
                n = int(key.rsplit("-", 1)[1])
                status = {"AccountSid": account, "MessageSid": sid, "MessageStatus": "delivered"}
                stop = {
                    "AccountSid": account,
                    "MessageSid": "SM" + uuid.uuid4().hex,
                    "From": number(tag, n),
                    "To": "+13125550100",
                    "Body": "STOP",
                }
                answers += replay(client, base + "/webhooks/sms/status", status, token, args)
                replies = replay(client, base + "/webhooks/sms/inbound", stop, token, args)
                unconfirmed += sum("<Message>" in r.text for r in replies) != 1
                answers += replies
    finally:
        server.terminate()
        server.wait(timeout=60)
    failed = sum(r.status_code >= 300 for r in answers)
    ids = [str(uuid.UUID(str(pk))) for pk, _, _ in sent]
    twice = site.rows(
        "SELECT ref_id FROM patients_timelineevent WHERE ref_type = 'message'"
        " AND summary LIKE %s GROUP BY ref_id HAVING COUNT(*) > 1",
        ["%delivered"],
    )
    revoked_twice = site.rows(
        "SELECT patient_id FROM consent_consentrecord WHERE kind = 'comm_sms'"
        " AND capture_method = 'sms_keyword' GROUP BY patient_id, status HAVING COUNT(*) > 1"
    )
    repeated = len([r for (r,) in twice if r in ids]) + len(revoked_twice) + unconfirmed
    note = f"{len(sent)} messages, {failed} posts refused or failed"
    return Outcome(
        "webhooks",
        time.monotonic() - started,
        repeated=repeated + failed,
        posts=len(answers),
        note=note,
    )


def replay(
    client: httpx.Client, url: str, params: dict[str, str], token: str, args: argparse.Namespace
) -> list[httpx.Response]:
    signature = twilio_signature(url=url, params=params, token=token)
    gate = threading.Barrier(args.replays)

    def post(_: int) -> httpx.Response:
        gate.wait()
        return client.post(url, data=params, headers={"X-Twilio-Signature": signature})

    with ThreadPoolExecutor(args.replays) as pool:
        return list(pool.map(post, range(args.replays)))


def wait_for_server(port: int, server: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2)  # noqa: S501
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("careloop serve did not answer")


SCENARIOS = {
    "kill-points": kill_points,
    "random-kills": random_kills,
    "sms-outage": sms_outage,
    "smtp-outage": smtp_outage,
    "db-restarts": db_restarts,
    "webhooks": webhooks,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="per scenario")
    parser.add_argument("--kills", type=int, default=30, help="per kill scenario")
    parser.add_argument("--outages", type=int, default=4, help="per outage scenario")
    parser.add_argument("--replays", type=int, default=6, help="copies of each webhook")
    parser.add_argument("--webhooks", type=int, default=200, help="messages whose hooks replay")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres", metavar="URL", help="maintenance database URL; default: a SQLite file"
    )
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    names = args.only or [
        n for n in SCENARIOS if n != "db-restarts" or args.postgres
    ]  # no server to restart under SQLite
    if "webhooks" in names and "random-kills" not in names:
        names.insert(names.index("webhooks"), "random-kills")
    folder = Path(tempfile.mkdtemp(prefix="careloop-faults-"))
    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(f"outbox fault campaign on {engine}, seed {args.seed}")
    print(f"machine: {machine()}")
    outcomes: list[Outcome] = []
    try:
        with scratch_site(args.postgres, folder) as site:
            for name in names:
                rng = random.Random(f"{args.seed}-{name}")
                outcome = SCENARIOS[name](site, args, rng)
                outcomes.append(outcome)
                print(outcome.line(), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    bad = [o.name for o in outcomes if not o.ok]
    print("all zero" if not bad else f"NOT ZERO: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
