"""Fault drills against real worker processes, shared by the tests and the campaign.

A `Site` is a migrated database (a SQLite file or a PostgreSQL database) that this
process and `careloop` subprocesses use together, plus the settings that point the
subprocesses at the loopback providers. Workers are `careloop outreach dispatch
--until-empty` processes, killed with SIGKILL at chosen points:

- after claim: the provider holds the first request and drops it (nothing accepted);
  the worker dies holding a chunk of claimed messages;
- after the provider accepted: the provider keeps the message and holds its answer;
- before marking sent: the answer is released while the message table is locked
  against writes, so the worker dies waiting to record it;
- at a seeded random moment once the worker is sending.

`verdict` then holds the outcome to the three promises: nothing lost (every message
sent, withheld or dead with a reason), nothing sent twice (the provider's deliveries
counted per idempotency key and per text), nothing sent without a fresh allow decision
(no delivery after the patient's consent was withdrawn; every sent message records
`allowed`). Nothing here imports Django models: the campaign runs it without settings.
"""

from __future__ import annotations

import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Settings every drill process runs with. The lease is short so a dead worker's claims
# come back within seconds; retries start at a second; no quiet hours, so a drill may
# run at any hour; SQLite unencrypted, because the drill reads and locks the file itself.
DRILL_ENV = {
    "CARELOOP_ENV": "test",
    "CARELOOP_SQLITE_ENCRYPTION": "false",
    "CARELOOP_OUTREACH_LEASE_SECONDS": "5",
    "CARELOOP_OUTREACH_RETRY_BASE": "1",
    "CARELOOP_SMS_TIMEOUT": "3",
    "CARELOOP_SMTP_TIMEOUT": "3",
    "CARELOOP_QUIET_START": "00:00",
    "CARELOOP_QUIET_END": "00:00",
    "CARELOOP_OUTREACH_TEST_MODE": "false",
}
FINAL = frozenset({"sent", "delivered", "failed", "bounced", "read", "replied", "withheld", "dead"})
SENT = frozenset({"sent", "delivered", "failed", "bounced", "read", "replied"})
KILL_POINTS = ("after_claim", "after_accept", "before_marking_sent")


def key(tag: str, n: int) -> str:
    return f"fault-{tag}-{n}"


def body(tag: str, n: int) -> str:
    """A text unique to the message, so the provider's copies can be counted by text."""
    return f"Riverbend drill {tag} #{n}: your visit is Thursday at 10:30. Reply C to confirm."


def number(tag: str, n: int) -> str:
    """The drill patient's mobile number (E.164, in a fictional 555 range)."""
    return f"+1617555{(zlib.crc32(tag.encode()) + n) % 10_000:04d}"


@dataclass(frozen=True)
class Row:
    status: str
    send_reason: str
    status_detail: str
    provider_message_id: str
    attempts: int


@dataclass
class Worker:
    """A `careloop outreach dispatch --until-empty` process."""

    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM: a worker finishes what it holds and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish(timeout=timeout)

    def finish(self, timeout: float = 120.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Site:
    env: dict[str, str]
    folder: Path
    workers: list[Worker] = field(default_factory=list)
    driver: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return self.env["CARELOOP_DATABASE_URL"]

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgres")

    # --- processes ----------------------------------------------------------------------
    def careloop(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "careloop", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def drive(self, *args: str) -> None:
        """Run one command of the fault driver (tests/outreach/fault_driver.py), in the
        one driver process this site keeps."""
        if self.driver is None or self.driver.poll() is not None:
            self.driver = subprocess.Popen(
                [sys.executable, "-m", "tests.outreach.fault_driver"],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert self.driver.stdin is not None and self.driver.stdout is not None
        self.driver.stdin.write(shlex.join(args) + "\n")
        self.driver.stdin.flush()
        answer = self.driver.stdout.readline().strip()
        assert answer == "ok", answer or "the fault driver ended"

    def worker(self, *, patience: float = 20.0) -> Worker:
        log = self.folder / f"worker-{len(self.workers)}.log"
        with log.open("wb") as err:
            process = subprocess.Popen(
                [
                    # The checks run in the suite; a drill worker starts without them.
                    *(sys.executable, "-m", "careloop", "outreach", "--skip-checks"),
                    *("dispatch", "--until-empty", "--patience", str(patience)),
                ],
                env=self.env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        started = Worker(process=process, log=log)
        self.workers.append(started)
        return started

    def sweeper(self) -> Worker:
        """`careloop worker`: its periodic sweep takes up expired leases and due messages."""
        log = self.folder / f"sweeper-{len(self.workers)}.log"
        with log.open("wb") as err:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "careloop",
                    "worker",
                    "--skip-checks",
                    "--sweep-every",
                    "0.5",
                ],
                env=self.env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        started = Worker(process=process, log=log)
        self.workers.append(started)
        return started

    def serve(self, *, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """`careloop serve` on this database (its log in the site's folder)."""
        with (self.folder / "serve.log").open("wb") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "careloop", "serve", "--bind", f"127.0.0.1:{port}"],
                env={**self.env, **env},
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def stop_workers(self) -> None:
        for running in self.workers:
            running.kill()

    def close(self) -> None:
        self.stop_workers()
        if self.driver is not None:
            self.driver.kill()
            self.driver.wait(timeout=30)
            self.driver = None

    # --- the database, read and locked directly -------------------------------------------
    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.url.replace("postgres://", "postgresql://", 1))
        return sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=60)

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        if not self.postgres:
            sql = sql.replace("%s", "?")
        connection = self._connect()
        try:
            return list(connection.execute(sql, params).fetchall())
        finally:
            connection.close()

    def settled(self, tag: str) -> bool:
        """Every message of the drill is final (none queued or being sent)."""
        return all(row.status in FINAL for row in self.messages(tag).values())

    def messages(self, tag: str) -> dict[str, Row]:
        found = self.rows(
            "SELECT idempotency_key, status, send_reason, status_detail, provider_message_id,"
            " attempts FROM outreach_message WHERE template_id = %s",
            [f"fault-{tag}"],
        )
        return {k: Row(*rest) for k, *rest in found}

    def claimed_by(self, worker: Worker, tag: str) -> list[str]:
        """Keys of the messages the worker claimed and did not settle (`sending`)."""
        found = self.rows(
            "SELECT idempotency_key FROM outreach_message"
            " WHERE template_id = %s AND status = 'sending' AND lease_owner LIKE %s",
            [f"fault-{tag}", f"%-{worker.process.pid}-%"],
        )
        return sorted(k for (k,) in found)

    @contextmanager
    def writes_blocked(self) -> Iterator[None]:
        """Hold the message table against writes (reads go on) for the block."""
        connection = self._connect()
        try:
            if self.postgres:
                connection.execute("LOCK TABLE outreach_message IN EXCLUSIVE MODE")
            else:
                connection.isolation_level = None
                connection.execute("BEGIN IMMEDIATE")
            yield
        finally:
            connection.rollback()
            connection.close()

    def terminate_backends(self) -> int:
        """End every other session on the database, as a database restart would."""
        import psycopg

        name = self.url.rsplit("/", 1)[1]
        admin = self.url.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0]
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            ended = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            ).fetchall()
        return len(ended)


# --- killing workers at chosen points -------------------------------------------------------
# Called after each kill with the dead worker (to withdraw consent for its claims, say).
AfterKill = Callable[[Worker], None]


def kill_at_each(
    site: Site, provider: Any, points: Sequence[str], *, after_kill: AfterKill | None = None
) -> None:
    """SIGKILL one worker at each of `points` (from KILL_POINTS), in order. The next
    worker starts while the last is held, so start-ups overlap the drill."""
    holds = [provider.hold_next(accept=point != "after_claim") for point in points[:1]]
    victim = site.worker()
    for n, point in enumerate(points):
        hold, successor = holds[n], None
        try:
            reached_while_running(hold, victim)
            later = n + 1 < len(points)
            if later:
                holds.append(provider.hold_next(accept=points[n + 1] != "after_claim"))
            successor = site.worker() if later else None
            if point == "before_marking_sent":
                with site.writes_blocked():
                    hold.release()
                    time.sleep(0.5)
                    victim.kill()
            else:
                victim.kill()
        finally:
            hold.release()
            victim.kill()
        settle_in_flight()
        if after_kill is not None:
            after_kill(victim)
        if successor is not None:
            victim = successor


def reached_while_running(hold: Any, worker: Worker, *, timeout: float = 60.0) -> None:
    """Wait for a request to reach the provider's hold, failing early if the worker ends."""
    deadline = time.monotonic() + timeout
    while not hold.reached.wait(0.1):
        assert worker.process.poll() is None, f"the worker ended: {worker.stderr[-2000:]}"
        assert time.monotonic() < deadline, "no request reached the held point"


def kill_randomly(
    site: Site,
    activity: Callable[[], int],
    rng: random.Random,
    *,
    kills: int,
    window: float,
    after_kill: AfterKill | None = None,
) -> Worker:
    """SIGKILL `kills` workers, each at a seeded random point: after a random number
    (1 to 6) of provider requests (`activity()` counts them), or `window` seconds, plus
    a few random milliseconds. Counting requests rather than seconds keeps the points
    spread over the work on a fast machine and a slow one alike. The next worker starts
    while the last works; the one left running is returned, to finish the work."""
    victim = site.worker()
    for _ in range(kills):
        target, deadline = activity() + rng.randint(1, 6), time.monotonic() + window
        while activity() < target and time.monotonic() < deadline:
            if victim.process.poll() is not None:
                assert victim.process.returncode == 0, victim.stderr[-2000:]
                return victim  # it finished the work before its turn came
            time.sleep(0.005)
        successor = site.worker()
        time.sleep(rng.uniform(0.0, 0.05))
        victim.kill()
        settle_in_flight()
        if after_kill is not None:
            after_kill(victim)
        victim = successor
    return victim


def settle_in_flight() -> None:
    """Let a request the dead worker had fully sent finish at the provider."""
    time.sleep(0.3)


# --- the verdict ------------------------------------------------------------------------------
@dataclass
class Verdict:
    messages: int
    outcomes: Counter[str]
    # Not final (still queued or sending), or dead with no reason.
    lost: list[str]
    # Delivered by the provider more than once (per key, and per text).
    duplicates: dict[str, int]
    # Delivered after the patient withdrew consent, or recorded sent without `allowed`.
    violations: list[str]
    # The provider has it but we recorded something else, or the reverse.
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.violations or self.mismatches)

    def __str__(self) -> str:
        return (
            f"{self.messages} messages {dict(self.outcomes)}: lost {len(self.lost)}, "
            f"duplicates {len(self.duplicates)}, violations {len(self.violations)}, "
            f"mismatches {len(self.mismatches)}"
        )


def verdict(
    rows: dict[str, Row],
    deliveries: Sequence[tuple[str, str]],
    *,
    texts: Sequence[str] = (),
    revoked: dict[str, int] | None = None,
) -> Verdict:
    """Judge one drill. `deliveries` are (idempotency key, provider id) in the order the
    provider accepted them; `texts` the bodies it accepted; `revoked` maps a key to the
    number of deliveries made when its patient withdrew consent."""
    revoked = revoked or {}
    ours = [(k, pid) for k, pid in deliveries if k in rows]
    per_key = Counter(k for k, _ in ours)
    per_text = Counter(texts)
    duplicates = {k: n for k, n in per_key.items() if n > 1}
    duplicates.update({f"text:{t[:40]}": n for t, n in per_text.items() if n > 1})
    lost = [
        k
        for k, row in rows.items()
        if row.status not in FINAL or (row.status == "dead" and not row.status_detail)
    ]
    late = {k for since in set(revoked.values()) for k, _ in deliveries[since:]}
    violations = sorted(k for k in revoked if k in late)
    violations += sorted(
        k for k, row in rows.items() if row.status in SENT and row.send_reason != "allowed"
    )
    provider_ids = dict(ours)
    mismatches = sorted(
        k
        for k, row in rows.items()
        if (row.status in SENT) != (k in provider_ids)
        or (k in provider_ids and row.provider_message_id != provider_ids[k])
    )
    return Verdict(
        messages=len(rows),
        outcomes=Counter(row.status for row in rows.values()),
        lost=sorted(lost),
        duplicates=duplicates,
        violations=violations,
        mismatches=mismatches,
    )


def sms_deliveries(provider: Any) -> list[tuple[str, str]]:
    """(key, sid) of what the loopback SMS provider accepted, in order."""
    return [(k, m["sid"]) for k, m in zip(provider.delivered_keys, provider.messages, strict=True)]


def sms_texts(provider: Any, tag: str) -> list[str]:
    prefix = body(tag, 0).split("#", 1)[0]
    return [form["Body"] for form in provider.delivered if form.get("Body", "").startswith(prefix)]


def email_deliveries(inbox: Any) -> list[tuple[str, str]]:
    """(key, Message-ID) of what reached the SMTP server, in order."""
    arrived = [str(a.message["Message-ID"]) for a in inbox.arrived]
    return [(mid.strip("<>").split("@", 1)[0], mid) for mid in arrived]
