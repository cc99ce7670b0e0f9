"""Many clients book one slot at the same moment: exactly one wins, on either engine.

Each client is its own process with its own database connection (PostgreSQL: the
exclusion constraint decides; SQLite: the exclusive transaction serialises), started
together by a shared go-file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLIENTS = 8
DRIVER = "tests.scheduling.booking_driver"


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", DRIVER, *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout.strip()


@pytest.mark.slow
def test_simultaneous_bookings_of_one_slot_have_exactly_one_winner(
    scratch_env: dict[str, str], tmp_path: Path
) -> None:
    # Given a practice with one free 09:00 slot and eight patients who all want it
    plan = json.loads(_run(scratch_env, "setup", str(CLIENTS)))
    go = tmp_path / "go"
    shared = json.dumps({k: v for k, v in plan.items() if k != "patients"})
    clients = [
        subprocess.Popen(
            [sys.executable, "-m", DRIVER, "book", str(go), patient, shared],
            env=scratch_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for patient in plan["patients"]
    ]
    # When they all book it at once (each process is ready and polling the go-file)
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < CLIENTS:
        assert time.monotonic() < deadline, "the clients did not get ready"
        assert all(c.poll() is None for c in clients), "a client died before the race"
        time.sleep(0.05)
    go.touch()
    results = []
    for client in clients:
        out, err = client.communicate(timeout=120)
        assert client.returncode == 0, err[-2000:]
        results.append(out.strip())
    # Then exactly one booking stands and everyone else is offered other times
    winners = [r for r in results if r.startswith("won ")]
    losers = [r for r in results if r.startswith("taken ")]
    assert len(winners) == 1, results
    assert len(losers) == CLIENTS - 1, results
    assert all(int(r.split()[1]) > 0 for r in losers)
