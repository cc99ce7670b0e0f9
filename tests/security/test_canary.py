"""No class-I value is stored, dumped or logged in plaintext.

A demo practice is loaded into a real database of the current engine (an encrypted
SQLite file, or a scratch PostgreSQL database); then a canary is written into every
encrypted column through the models and the services that own them. The raw database
file (SQLite, with its WAL) or a `pg_dump` (PostgreSQL), and everything the processes
printed, must not contain any canary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings

WRITER = Path(__file__).with_name("canary_writer.py")


def careloop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "careloop", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


def database_bytes(env: dict[str, str]) -> bytes:
    url = env["CARELOOP_DATABASE_URL"]
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(
            candidate.read_bytes()
            for candidate in (path, path.with_name(path.name + "-wal"))
            if candidate.exists()
        )
    db = settings.DATABASES["default"]
    name = url.rsplit("/", 1)[-1]
    command = ["pg_dump", "--no-owner", "--data-only", "-d", name]
    if db["HOST"]:
        command += ["-h", db["HOST"]]
    if db["PORT"]:
        command += ["-p", str(db["PORT"])]
    if db["USER"]:
        command += ["-U", db["USER"]]
    return subprocess.run(command, capture_output=True, check=True, timeout=300).stdout


def test_no_canary_reaches_the_database_in_plaintext_or_any_output(
    scratch_env: dict[str, str],
) -> None:
    outputs = []
    demo = careloop(scratch_env, "demo", "--patients", "60", "--seed", "3", "--as-of", "2026-06-01")
    outputs += [demo.stdout, demo.stderr]
    written = careloop(scratch_env, "shell", "-c", WRITER.read_text())
    outputs.append(written.stderr)
    report = json.loads(written.stdout.strip().splitlines()[-1])
    assert report["missing"] == [], "every encrypted column needs a canary"
    canaries = [c.encode() for c in report["canaries"]]
    assert len(canaries) >= 15

    # The canaries were really stored: reading them back through the ORM finds them.
    check = careloop(
        scratch_env,
        "shell",
        "-c",
        "from careloop.patients.models import Patient; "
        "print(sum(p.given_name.startswith('CANARY') for p in Patient.objects.all()))",
    )
    assert check.stdout.strip().splitlines()[-1] == "1"
    outputs += [check.stderr]

    raw = database_bytes(scratch_env)
    assert len(raw) > 50_000
    leaked = [c.decode() for c in canaries if c in raw or c.lower() in raw.lower()]
    assert leaked == [], f"plaintext in the database: {leaked}"
    for output in outputs:
        assert not [c for c in canaries if c.decode() in output]
