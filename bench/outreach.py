#!/usr/bin/env python3
"""Benchmark a population care-gap campaign: decide, enqueue, claim, and dispatch.

The practice: PostgreSQL database `careloop_bench_outreach`, made once and kept (a
practices note in <cache>/practice.json says what it holds). It starts as a copy
(CREATE DATABASE ... TEMPLATE) of the 100,000-patient demo practice that
bench/caregaps.py keeps (`careloop_bench_caregaps_100k`, `careloop demo --patients
100000 --seed 1 --as-of 2026-11-01`; made here with the same command when missing),
then:

- the care-gap measures are evaluated as of 2026-11-01 (`careloop caregaps evaluate`),
  which opens the gaps the campaign is about;
- the consent ledger gets what the demo leaves out (it writes preferences and opt-ins,
  not ledger records): TCPA SMS consent captured at registration for 88% of patients
  with a verified SMS-capable phone, of whom 5% later replied STOP; and recent SMS
  contacts, so the frequency caps bite (3% texted 5 hours before the campaign, 2%
  three times in the week). Patients are picked by a hash of their id: reproducible;
- for more than 100,000 patients the practice is copied up (like bench/replicate.py):
  each patient `copies - 1` times with an id derived from the original's (md5 of id
  and copy number), with their contact points, preferences, SMS opt-ins, ledger
  records, recent contacts and open care gaps. The class-I values the campaign reads
  (given and preferred names, contact values) are sealed anew for each copy's row;
  the others are copied as they are (bound to the original row, so unreadable in the
  copy; nothing here reads them). Clinical facts are not copied: the gaps are.

The run, every step a separate process, with the clock pinned to the campaign's
moment (Tuesday 2026-11-03 17:00 UTC: noon in New York, 7 in the morning in
Honolulu) so the decisions do not depend on when the bench runs:

1. campaign: an SMS care reminder to every patient with an open care gap (or every
   patient when the gap tables are empty; the output says which), through
   `careloop.outreach.campaign.campaign_enqueue`: decide (set-based), then render,
   seal and insert (COPY). With --patients below the practice's size, the campaign
   is over the first N patients by id. Messages of earlier runs are removed first.
2. claim: `--claimers` processes lease due messages with `messages_claim` (batches of
   `--claim-batch`) until `--claim` messages are leased; then the leases are undone.
   With --claim-split, the same again with the due query split in two ordered index
   scans (`claim_split` below), to show what that change to the dispatcher gives.
3. dispatch: for each latency in `--latencies` (ms), a loopback Twilio-like provider
   (tests/outreach/fake_twilio.py in its own process, answering after the latency)
   and `--dispatchers` processes running `dispatch_due` over `--sample` messages.
   Before dispatch, 1% of the patients about to be texted reply STOP (their consent
   revoked through the ledger): the dispatcher's second decision must withhold them.
   Duplicates: the provider's deliveries per idempotency key beyond the first.
   Consent violations: deliveries to patients whose campaign decision was not
   "allowed", or who replied STOP before dispatch. Both must be 0.

The machine (CPU, cores, RAM, load average before and after) is printed and, with
every figure, written as JSON to bench/out/outreach-<time>.json.

    python bench/outreach.py [--patients 1000000] [--sample 2000] [--latencies 0,50,200]
        [--dispatchers 8] [--claimers 2] [--claim 50000] [--claim-batch 1000]
        [--claim-split] [--regenerate]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from caregaps import (
    CACHE as CAREGAPS_CACHE,
)
from caregaps import (
    Practices,
    Target,
    ensure_practice,
    git_revision,
    load_average,
    machine,
    pg_url,
)
from demo_generate import AS_OF, _pg_admin, base_env, careloop

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
CACHE = Path(tempfile.gettempdir()) / "careloop-bench-outreach"
DB = "careloop_bench_outreach"
BASE_PATIENTS = 100_000
# Tuesday, noon in New York: most of the country awake, Hawaii still in quiet hours.
AT = datetime.datetime(2026, 11, 3, 17, 0, tzinfo=datetime.UTC)
CAMPAIGN = "bench-crc-recall"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "fake-auth-token"  # noqa: S105 - the loopback provider's, not a secret


# --- the driver -------------------------------------------------------------------------


def worker_env() -> dict[str, str]:
    # The demo practice's data keys are wrapped by bench/caregaps.py's master key.
    env = base_env(CAREGAPS_CACHE / "var", pg_url(DB))
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + str(REPO)
    return env


def worker(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one step in its own process; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args],
        env=env or worker_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed: {proc.stderr.strip()[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def step(text: str) -> None:
    print(f"  {text}", flush=True)


def _database_exists() -> bool:
    import psycopg

    from demo_generate import PG_MAINTENANCE

    with psycopg.connect(PG_MAINTENANCE.replace("postgres://", "postgresql://", 1)) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone()
    return found is not None


def ensure_outreach_practice(patients: int, *, regenerate: bool) -> dict[str, Any]:
    """The practice in `careloop_bench_outreach`, made (or copied up) when it is short.

    Each stage is noted in <cache>/practice.json when it has finished, so an
    interrupted one is done again and a finished one is not."""
    CACHE.mkdir(parents=True, exist_ok=True)
    note_path = CACHE / "practice.json"
    note: dict[str, Any] = json.loads(note_path.read_text()) if note_path.exists() else {}

    def save(**changes: Any) -> None:
        note.update(changes)
        note_path.write_text(json.dumps(note, indent=2) + "\n")

    wanted = max(BASE_PATIENTS, -(-patients // BASE_PATIENTS) * BASE_PATIENTS)
    if regenerate or not note.get("copied") or not _database_exists():
        CAREGAPS_CACHE.mkdir(parents=True, exist_ok=True)
        source = Target("postgresql", BASE_PATIENTS, CAREGAPS_CACHE, "careloop_bench_caregaps")
        step(f"the demo practice: {source.name}")
        ensure_practice(source, Practices(CAREGAPS_CACHE), regenerate=False)
        step(f"copying it into {DB}")
        _pg_admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        note.clear()
        note_path.unlink(missing_ok=True)
        _pg_admin(f"CREATE DATABASE {DB} TEMPLATE {source.name}")
        save(copied=source.name, patients=BASE_PATIENTS)
    env = worker_env()
    subprocess.run([*careloop(), "migrate", "-v0"], env=env, check=True)
    if not note.get("gaps_evaluated"):  # about 14 minutes for 100,000 patients
        began = time.monotonic()
        step("evaluating the care-gap measures (opens the gaps)")
        subprocess.run([*careloop(), "caregaps", "load-valuesets"], env=env, check=True)
        subprocess.run(
            [*careloop(), "caregaps", "evaluate", "--as-of", AS_OF],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        save(gaps_evaluated=AS_OF, gaps_seconds=round(time.monotonic() - began, 1))
    if not note.get("top_up"):
        step("adding ledger consents and recent contacts")
        save(top_up=worker(["top-up"], env))
    if note["patients"] < wanted:
        copies = wanted // BASE_PATIENTS
        if note["patients"] != BASE_PATIENTS:
            raise RuntimeError(f"{DB} holds copies already: run with --regenerate")
        step(f"copying the practice up to {wanted:,} patients ({copies} copies)")
        began = time.monotonic()
        counts = worker(["replicate", str(copies)], env)
        save(
            replicated=counts, patients=wanted, replicate_seconds=round(time.monotonic() - began, 1)
        )
    return note


def run_dispatch(latency_ms: int, sample: int, dispatchers: int) -> dict[str, Any]:
    """One latency: the provider in its own process, dispatchers sending the sample."""
    env = worker_env()
    port_file = CACHE / f"provider-{os.getpid()}.port"
    counts_file = CACHE / f"provider-{os.getpid()}.json"
    port_file.unlink(missing_ok=True)
    provider = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--worker",
            "provider",
            str(latency_ms),
            str(port_file),
            str(counts_file),
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or provider.poll() is not None:
                raise RuntimeError("the loopback provider did not start")
            time.sleep(0.1)
        env = {
            **env,
            "CARELOOP_SMS_BASE_URL": f"http://127.0.0.1:{port_file.read_text().strip()}",
            "CARELOOP_SMS_ACCOUNT_SID": ACCOUNT_SID,
            "CARELOOP_SMS_AUTH_TOKEN": AUTH_TOKEN,
            "CARELOOP_SMS_MESSAGING_SERVICE_SID": "MG" + "1" * 32,
            "CARELOOP_SMS_WEBHOOK_BASE_URL": "",
        }
        probe = worker(["sample", str(sample)], env)
        share = -(-sample // dispatchers)
        began = time.monotonic()
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", "dispatch", str(share)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(dispatchers)
        ]
        outcomes: Counter[str] = Counter()
        spans: list[tuple[float, float]] = []
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"dispatcher failed: {err.strip()[-3000:]}")
            result = json.loads(out.strip().splitlines()[-1])
            outcomes.update(result["outcomes"])
            spans.append((result["began"], result["ended"]))
        wall = time.monotonic() - began
        # From the first dispatcher sending to the last one done: start-up left out.
        seconds = max(end for _, end in spans) - min(start for start, _ in spans)
    finally:
        provider.send_signal(signal.SIGTERM)
        provider.wait(timeout=60)
        port_file.unlink(missing_ok=True)
    seen = json.loads(counts_file.read_text())
    counts_file.unlink(missing_ok=True)
    delivered: dict[str, int] = seen["delivered"]
    check = worker(["violations", json.dumps(sorted(delivered)), json.dumps(probe["stopped"])])
    return {
        "latency_ms": latency_ms,
        "dispatchers": dispatchers,
        "sample": sample,
        "seconds": round(seconds, 2),
        "seconds_with_process_start": round(wall, 2),
        "outcomes": dict(outcomes),
        "sent_per_second": round(outcomes["sent"] / seconds, 1) if seconds else None,
        "provider_deliveries": sum(delivered.values()),
        "duplicates": sum(n - 1 for n in delivered.values() if n > 1),
        # A key sent again (after a timeout or a crash) is answered, not delivered, by
        # the provider: counted, but not a duplicate.
        "resent_keys": sum(n - 1 for n in seen["requests"].values() if n > 1),
        "stopped_before_dispatch": len(probe["stopped"]),
        "consent_violations": check["violations"],
    }


def run_claims(options: argparse.Namespace, how: str) -> dict[str, Any]:
    """`--claimers` processes leasing `--claim` messages in batches; then undone."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                "claim",
                str(-(-options.claim // options.claimers)),
                str(options.claim_batch),
                how,
            ],
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(options.claimers)
    ]
    began = time.monotonic()
    claimed = 0
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"claimer failed: {err.strip()[-3000:]}")
        claimed += json.loads(out.strip().splitlines()[-1])["claimed"]
    seconds = time.monotonic() - began
    undone = worker(["unclaim"])
    what = "messages_claim" if how == "dispatch" else "split due query (proposed)"
    print(
        f"  claim   {seconds:7.2f} s  {claimed / seconds:10,.0f} messages/s "
        f"({what}: {claimed:,} leased by {options.claimers} processes, batches of "
        f"{options.claim_batch}; {undone['double_claims']} claimed twice)",
        flush=True,
    )
    return {
        "how": what,
        "claimers": options.claimers,
        "batch": options.claim_batch,
        "claimed": claimed,
        "seconds": round(seconds, 2),
        "per_second": round(claimed / seconds, 1),
        "double_claims": undone["double_claims"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--latencies", default="0,50,200")
    parser.add_argument("--dispatchers", type=int, default=8)
    parser.add_argument("--claimers", type=int, default=2)
    parser.add_argument("--claim", type=int, default=50_000)
    parser.add_argument("--claim-batch", type=int, default=1000)
    parser.add_argument(
        "--claim-split", action="store_true", help="also measure the split due query"
    )
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--worker", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    if options.worker:
        run_worker(options.worker)
        return
    started = datetime.datetime.now(datetime.UTC)
    facts: dict[str, Any] = {
        "machine": machine(),
        "load_average_before": load_average(),
        "git": git_revision(),
        "started_at": started.isoformat(timespec="seconds"),
        "campaign_at": AT.isoformat(),
    }
    m = facts["machine"]
    print(
        f"outreach campaign bench: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; "
        f"{m['platform']}; load average {facts['load_average_before']}",
        flush=True,
    )
    facts["practice"] = ensure_outreach_practice(options.patients, regenerate=options.regenerate)
    print(f"campaign over up to {options.patients:,} patients (PostgreSQL)", flush=True)
    campaign = worker(["campaign", str(options.patients)])
    facts["campaign"] = campaign
    total = campaign["written"]
    print(
        f"  population: {campaign['population']:,} patients ({campaign['population_kind']})\n"
        f"  decide  {campaign['decide_seconds']:7.2f} s  "
        f"{campaign['population'] / campaign['decide_seconds']:10,.0f} decisions/s\n"
        f"  enqueue {campaign['write_seconds']:7.2f} s  "
        f"{total / campaign['write_seconds']:10,.0f} messages/s (render, seal, COPY)\n"
        f"  total   {campaign['seconds']:7.2f} s  {total / campaign['seconds']:10,.0f} messages/s"
        f"  ({total:,} messages: {campaign['counts']})\n"
        f"  again   {campaign['rerun_seconds']:7.2f} s  wrote {campaign['rerun_written']}, "
        f"already {campaign['rerun_already']:,}",
        flush=True,
    )
    facts["claim"] = run_claims(options, "dispatch")
    if options.claim_split:
        facts["claim_split"] = run_claims(options, "split")
    facts["dispatch"] = []
    worker(["park"])
    for latency in [int(x) for x in options.latencies.split(",") if x]:
        result = run_dispatch(latency, options.sample, options.dispatchers)
        facts["dispatch"].append(result)
        print(
            f"  dispatch at {latency:3d} ms: {result['sent_per_second']:8.1f} sent/s "
            f"({result['outcomes']}, {options.dispatchers} dispatchers); duplicates "
            f"{result['duplicates']}, consent violations {result['consent_violations']} "
            f"({result['stopped_before_dispatch']} replied STOP before dispatch)",
            flush=True,
        )
    facts["load_average_after"] = load_average()
    rate = total / campaign["seconds"]
    facts["targets"] = {
        "decide_enqueue_per_second_min": 10_000,
        "decide_enqueue_per_second": round(rate, 1),
        "claim_per_second": facts["claim"]["per_second"],
        "million_enqueued_under_30_s": campaign["seconds"] * 1_000_000 / max(total, 1) < 30,
        "duplicates": sum(d["duplicates"] for d in facts["dispatch"]),
        "consent_violations": sum(d["consent_violations"] for d in facts["dispatch"]),
    }
    print(f"load average after: {facts['load_average_after']}", flush=True)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"outreach-{started:%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(facts, indent=2, default=str) + "\n")
    print(f"wrote {path.relative_to(REPO)}", flush=True)


# --- the workers (each a separate process inside the bench database's environment) ------


def _setup() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careloop.settings")
    django.setup()


def run_worker(args: list[str]) -> None:
    _setup()
    from careloop.core import clock

    name, rest = args[0], args[1:]
    if name == "provider":
        work_provider(int(rest[0]), Path(rest[1]), Path(rest[2]))
        return
    with clock.frozen(AT):
        result = WORKERS[name](*rest)
    print(json.dumps(result, default=str), flush=True)


def _sql(statement: str, params: list[Any] | None = None) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])
        return int(cursor.rowcount)


def _bucket(salt: str) -> str:
    """A patient's reproducible share in [0, 1): from md5 of its id and a salt."""
    return f"(('x' || substr(md5(p.id::text || '{salt}'), 1, 8))::bit(32)::bigint / 4294967296.0)"


def work_top_up() -> dict[str, Any]:
    """Ledger consents and recent contacts the demo does not make (see the docstring)."""
    from django.db import transaction

    sms_phone = (
        "EXISTS (SELECT 1 FROM patients_contactpoint c WHERE c.patient_id = p.id "
        "AND c.system = 'phone' AND c.verified AND c.can_sms)"
    )
    with transaction.atomic():
        granted = _sql(
            "INSERT INTO consent_consentrecord (id, patient_id, kind, scope, status, "
            "period_start, capture_method, captured_at, recorded_at, signer_is_proxy, "
            "document_version, document_sha256, integrity_hash) "
            "SELECT md5(p.id::text || ':sms')::uuid, p.id, 'comm_sms', '', 'granted', "
            "p.created_at, 'paper', p.created_at, p.created_at, false, '', '', '' "
            f"FROM patients_patient p WHERE {sms_phone} AND {_bucket('sms')} < 0.88"
        )
        stopped = _sql(
            "INSERT INTO consent_consentrecord (id, patient_id, kind, scope, status, "
            "period_start, capture_method, captured_at, recorded_at, signer_is_proxy, "
            "document_version, document_sha256, integrity_hash) "
            "SELECT md5(p.id::text || ':stop')::uuid, p.id, 'comm_sms', '', 'revoked', "
            "%s, 'sms_keyword', %s, %s, false, '', '', '' "
            f"FROM patients_patient p WHERE {sms_phone} AND {_bucket('sms')} < 0.88 "
            f"AND {_bucket('stop')} < 0.05",
            [AT - datetime.timedelta(days=20)] * 3,
        )
        texted = _sql(
            "INSERT INTO consent_contactevent (patient_id, channel, purpose, at) "
            "SELECT p.id, 'sms', 'care_reminder', %s FROM patients_patient p "
            f"WHERE {_bucket('cap1')} < 0.03",
            [AT - datetime.timedelta(hours=5)],
        )
        weekly = 0
        for days in (2, 4, 6):
            weekly += _sql(
                "INSERT INTO consent_contactevent (patient_id, channel, purpose, at) "
                "SELECT p.id, 'sms', 'billing', %s FROM patients_patient p "
                f"WHERE {_bucket('cap7')} < 0.02",
                [AT - datetime.timedelta(days=days)],
            )
        _vendor()
    _sql("ANALYZE")
    return {
        "sms_consents_granted": granted,
        "stop_replies": stopped,
        "texted_today": texted,
        "texted_three_times_this_week": weekly // 3,
    }


def _vendor() -> None:
    from django.conf import settings

    from careloop.consent.models import BaaStatus, Vendor, VendorKind

    Vendor.objects.update_or_create(
        name=settings.SMS_VENDOR,
        defaults={
            "kind": VendorKind.SMS,
            "baa_status": BaaStatus.ACTIVE,
            "baa_signed_on": datetime.date(2025, 1, 1),
            "updated_at": AT,
        },
    )


def _copy_id(expr: str) -> str:
    return f"md5({expr}::text || ':' || k)::uuid"


def _sealed_copies(table: str, columns: list[str], select: str, copies: int) -> tuple[str, int]:
    """A temporary table of the copies' class-I values sealed anew for each copy's row:
    (new id, one sealed value per column). Returns its name and row count."""
    from django.db import connection

    from careloop.core.bulk import insert_rows
    from careloop.security import crypto

    name = f"bench_sealed_{table}"
    version = crypto.keyring.active_version()
    cols = ", ".join(f"{c} bytea" for c in columns)
    _sql(f"CREATE TEMPORARY TABLE {name} (id uuid PRIMARY KEY, {cols})")
    with connection.cursor() as cursor:
        cursor.execute(select)
        originals = cursor.fetchall()
    import hashlib
    import uuid

    rows = []
    count = 0
    for original_id, *values in originals:
        opened = [
            None
            if value is None
            else crypto.open_sealed(bytes(value), table=table, column=column, row_id=original_id)
            for column, value in zip(columns, values, strict=True)
        ]
        for k in range(2, copies + 1):
            new_id = uuid.UUID(hashlib.md5(f"{original_id}:{k}".encode()).hexdigest())  # noqa: S324
            rows.append(
                (
                    new_id,
                    *(
                        None
                        if text is None
                        else crypto.seal(
                            text, table=table, column=column, row_id=new_id, version=version
                        )
                        for column, text in zip(columns, opened, strict=True)
                    ),
                )
            )
        if len(rows) >= 50_000:
            insert_rows(name, ["id", *columns], rows)
            count += len(rows)
            rows = []
    insert_rows(name, ["id", *columns], rows)
    return name, count + len(rows)


def _columns(table: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = 'public' ORDER BY ordinal_position",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


LIVE = "JOIN patients_patient live ON live.id = t.patient_id AND live.merged_into_id IS NULL"


def _insert_copies(
    table: str, copies: int, *, replace: dict[str, str], where: str = "", join: str = LIVE
) -> int:
    from django.db import connection

    quote = connection.ops.quote_name  # a column may be named like a keyword ("group")
    columns = [c for c in _columns(table) if c not in replace or replace[c]]
    select = ", ".join(replace.get(c, f"t.{quote(c)}") for c in columns)
    return _sql(
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - catalog
        f"SELECT {select} FROM {table} t CROSS JOIN generate_series(2, %s) k {join} {where}",
        [copies],
    )


def work_replicate(copies_text: str) -> dict[str, Any]:
    """Copy the base practice's patients and what the campaign reads up `copies` times."""
    from django.db import transaction

    copies = int(copies_text)
    patient = _copy_id("t.patient_id")
    counts: dict[str, int] = {}
    with transaction.atomic():
        names, _ = _sealed_copies(
            "patients_patient",
            ["given_name", "family_name", "preferred_name"],
            "SELECT id, given_name, family_name, preferred_name FROM patients_patient "
            "WHERE merged_into_id IS NULL",
            copies,
        )
        counts["patients"] = _insert_copies(
            "patients_patient",
            copies,
            replace={
                "id": _copy_id("t.id"),
                "given_name": "n.given_name",
                "family_name": "n.family_name",
                "preferred_name": "n.preferred_name",
                "address_line": "NULL",
                "city": "NULL",
                "postal_code": "NULL",
                "merged_into_id": "NULL",
            },
            join=f"JOIN {names} n ON n.id = {_copy_id('t.id')}",
            where="WHERE t.merged_into_id IS NULL",
        )
        values, _ = _sealed_copies(
            "patients_contactpoint",
            ["value"],
            "SELECT c.id, c.value FROM patients_contactpoint c JOIN patients_patient p "
            "ON p.id = c.patient_id AND p.merged_into_id IS NULL",
            copies,
        )
        counts["contact_points"] = _insert_copies(
            "patients_contactpoint",
            copies,
            replace={"id": _copy_id("t.id"), "patient_id": patient, "value": "v.value"},
            join=f"{LIVE} JOIN {values} v ON v.id = {_copy_id('t.id')}",
        )
        counts["preferences"] = _insert_copies(
            "consent_communicationpreference", copies, replace={"patient_id": patient}
        )
        counts["sms_opt_ins"] = _insert_copies(
            "consent_channeloptin",
            copies,
            replace={"id": "", "patient_id": patient},
            where="WHERE t.channel = 'sms'",
        )
        counts["consent_records"] = _insert_copies(
            "consent_consentrecord",
            copies,
            replace={"id": _copy_id("t.id"), "patient_id": patient},
        )
        counts["contact_events"] = _insert_copies(
            "consent_contactevent", copies, replace={"id": "", "patient_id": patient}
        )
        counts["open_care_gaps"] = _insert_copies(
            "caregaps_caregap",
            copies,
            replace={"id": _copy_id("t.id"), "patient_id": patient},
            where="WHERE t.state = 'open'",
        )
    _sql("VACUUM ANALYZE")
    return counts


def _reset() -> None:
    """Remove what earlier runs left: their messages, contacts and STOP replies."""
    from django.db import transaction

    # DELETE, not TRUNCATE ... CASCADE, which would empty every table that may point at
    # a message (the care gaps among them).
    with transaction.atomic():
        _sql("DELETE FROM outreach_message")
        _sql("DELETE FROM consent_contactevent WHERE at >= %s", [AT])
        _sql("DELETE FROM consent_consentrecord WHERE captured_at >= %s", [AT])
    _sql("VACUUM ANALYZE outreach_message")


def _population(limit: int) -> tuple[Any, str]:
    from careloop.caregaps.models import CareGap, GapState
    from careloop.patients.models import Patient

    patients = Patient.objects.all()
    total = patients.count()
    if limit < total:
        last = patients.order_by("id").values_list("id", flat=True)[limit - 1]
        patients = Patient.objects.filter(pk__lte=last)
    gaps = CareGap.objects.filter(state=GapState.OPEN)
    if gaps.exists():
        return patients.filter(pk__in=gaps.values("patient_id")), "patients with an open gap"
    return patients, "every patient: the gap tables are empty"


def work_campaign(limit_text: str) -> dict[str, Any]:
    from careloop.consent.models import Channel, ContentClass, Purpose
    from careloop.outreach.campaign import Recipient, campaign_enqueue
    from careloop.outreach.outbox import Rendered

    _reset()
    _vendor()
    population, kind = _population(int(limit_text))
    size = population.count()
    texts = {
        "en": "{name}, Riverbend Health: you are due for a preventive screening. Call "
        "555-0100 or book online. Reply STOP to opt out.",
        "es": "{name}, Riverbend Health: le toca una prueba preventiva. Llame al 555-0100 o "
        "reserve en linea. Responda STOP para no recibir mensajes.",
    }

    def render(recipient: Recipient) -> Rendered:
        text = texts.get(recipient.language, texts["en"])
        return Rendered(body=text.format(name=recipient.preferred_name or recipient.given_name))

    def run() -> Any:
        return campaign_enqueue(
            patients=population,
            template_key="care-gap-recall",
            channel=Channel.SMS,
            purpose=Purpose.CARE_REMINDER,
            content_class=ContentClass.GENERIC,
            at=AT,
            campaign_key=CAMPAIGN,
            render=render,
        )

    began = time.monotonic()
    first = run()
    seconds = time.monotonic() - began
    began = time.monotonic()
    again = run()
    return {
        "population": size,
        "population_kind": kind,
        "decide_seconds": round(first.decide_seconds, 2),
        "write_seconds": round(first.write_seconds, 2),
        "seconds": round(seconds, 2),
        "written": first.written,
        "counts": dict(first.counts.most_common()),
        "rerun_seconds": round(time.monotonic() - began, 2),
        "rerun_written": again.written,
        "rerun_already": again.already,
    }


def claim_split(*, owner: str, limit: int) -> list[Any]:
    """`messages_claim` with its due query split in two, each an ordered scan of its
    own index (expired leases on message_lease_idx, due queued messages on
    message_due_idx), instead of one OR that PostgreSQL answers by collecting and
    sorting every due row for each claim. Measured beside the real one (--claim-split)
    to show what the change would give; the lease written is the same."""
    from django.conf import settings
    from django.db import transaction
    from django.db.models import F

    from careloop.core.clock import now
    from careloop.outreach.models import Message, MessageStatus

    at = now()
    with transaction.atomic():
        expired = list(
            Message.objects.filter(status=MessageStatus.SENDING, lease_until__lt=at)
            .order_by("lease_until")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        due = list(
            Message.objects.filter(status=MessageStatus.QUEUED, next_attempt_at__lte=at)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[: limit - len(expired)]
        )
        ids = expired + due
        if not ids:
            return []
        Message.objects.filter(id__in=ids).update(
            status=MessageStatus.SENDING,
            lease_owner=owner,
            lease_until=at + datetime.timedelta(seconds=settings.OUTREACH_LEASE_SECONDS),
            fencing_token=F("fencing_token") + 1,
            attempts=F("attempts") + 1,
            updated_at=at,
        )
        claimed = Message.objects.filter(id__in=ids, lease_owner=owner, status="sending")
        return list(claimed.values_list("id", "fencing_token"))


def work_claim(wanted_text: str, batch_text: str, how: str = "dispatch") -> dict[str, Any]:
    from careloop.outreach.dispatch import messages_claim, new_owner

    claim = messages_claim if how == "dispatch" else claim_split
    owner, wanted, batch = new_owner(), int(wanted_text), int(batch_text)
    claimed = 0
    while claimed < wanted:
        got = claim(owner=owner, limit=min(batch, wanted - claimed))
        if not got:
            break
        claimed += len(got)
    return {"claimed": claimed}


def work_unclaim() -> dict[str, Any]:
    """Undo the claim step's leases, counting messages leased more than once."""
    from careloop.outreach.models import Message

    double = Message.objects.filter(status="sending", fencing_token__gt=1).count()
    undone = _sql(
        "UPDATE outreach_message SET status = 'queued', lease_owner = '', lease_until = NULL, "
        "attempts = 0, fencing_token = 0 WHERE status = 'sending'"
    )
    return {"undone": undone, "double_claims": double}


def work_park() -> dict[str, Any]:
    """Park every due message a day later: the dispatch samples choose their own."""
    parked = _sql(
        "UPDATE outreach_message SET next_attempt_at = %s "
        "WHERE status = 'queued' AND next_attempt_at <= %s",
        [AT + datetime.timedelta(days=1), AT],
    )
    return {"parked": parked}


def work_sample(sample_text: str) -> dict[str, Any]:
    """Make the next `sample` queued messages (by id) the only due ones; 1% of their
    patients reply STOP first (the consent ledger, as the SMS webhook records it)."""
    from careloop.consent.ledger import consent_record
    from careloop.consent.models import CaptureMethod, ConsentKind, ConsentStatus
    from careloop.outreach.models import Message
    from careloop.patients.models import Patient

    later = AT + datetime.timedelta(days=1)
    Message.objects.filter(status="queued", next_attempt_at__lte=AT).update(next_attempt_at=later)
    picked = list(
        Message.objects.filter(status="queued", next_attempt_at=later, scheduled_reason="allowed")
        .order_by("id")
        .values_list("id", "patient_id")[: int(sample_text)]
    )
    Message.objects.filter(pk__in=[pk for pk, _ in picked]).update(next_attempt_at=AT)
    stopped = [patient_id for _, patient_id in picked[::100]]
    for patient in Patient.objects.filter(pk__in=stopped):
        consent_record(
            patient=patient,
            kind=ConsentKind.SMS,
            status=ConsentStatus.REVOKED,
            capture_method=CaptureMethod.SMS_KEYWORD,
        )
    return {"sample": len(picked), "stopped": [str(pk) for pk in stopped]}


def work_dispatch(limit_text: str) -> dict[str, Any]:
    """Send up to `limit` due messages; the outcomes and when sending began and ended
    (wall clock, so the driver can leave process start-up out of the rate)."""
    from careloop.outreach.dispatch import dispatch_due

    began = time.time()
    outcomes = dict(dispatch_due(limit=int(limit_text)))
    return {"outcomes": outcomes, "began": began, "ended": time.time()}


def work_violations(keys_json: str, stopped_json: str) -> dict[str, Any]:
    """Deliveries to patients whose campaign decision was not allowed, or who had
    replied STOP before dispatch."""
    from careloop.outreach.models import Message

    keys = json.loads(keys_json)
    stopped = set(json.loads(stopped_json))
    violations = 0
    for patient_id, reason in Message.objects.filter(idempotency_key__in=keys).values_list(
        "patient_id", "scheduled_reason"
    ):
        if reason != "allowed" or str(patient_id) in stopped:
            violations += 1
    unknown = len(keys) - Message.objects.filter(idempotency_key__in=keys).count()
    return {"violations": violations + unknown}


def work_provider(latency_ms: int, port_file: Path, counts_file: Path) -> None:
    """The loopback Twilio-like provider, answering each request after `latency_ms`."""
    import threading

    sys.path.insert(0, str(REPO))
    from tests.outreach.fake_twilio import FakeTwilio

    delivered: Counter[str] = Counter()

    class SlowTwilio(FakeTwilio):
        def answer(
            self, path: str, headers: dict[str, str], form: dict[str, str]
        ) -> tuple[int, dict[str, str], dict[str, Any]]:
            time.sleep(latency_ms / 1000)
            return super().answer(path, headers, form)

        def _answer(
            self, path: str, headers: dict[str, str], form: dict[str, str], key: str
        ) -> tuple[int, dict[str, str], dict[str, Any]]:
            # Under the provider's lock: a delivery is a form added to `delivered` (a
            # repeated key is answered from the first and not delivered again).
            before = len(self.delivered)
            answer = super()._answer(path, headers, form, key)
            if len(self.delivered) > before:
                delivered[key] += 1
            return answer

    provider = SlowTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    port_file.write_text(str(provider.server.server_address[1]))
    done.wait()
    provider.server.shutdown()
    requests = Counter(received.idempotency_key for received in provider.requests)
    counts_file.write_text(json.dumps({"delivered": delivered, "requests": requests}))


WORKERS: dict[str, Any] = {
    "top-up": work_top_up,
    "replicate": work_replicate,
    "campaign": work_campaign,
    "claim": work_claim,
    "unclaim": work_unclaim,
    "park": work_park,
    "sample": work_sample,
    "dispatch": work_dispatch,
    "violations": work_violations,
}


if __name__ == "__main__":
    main()
