"""/readyz tells a load balancer the truth about the database, on a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = (
    "from django.test import Client; c = Client(HTTP_HOST='localhost'); "
    "r = c.get('/readyz', secure=True); "
    "h = c.get('/healthz', secure=True); "
    "import json; print(json.dumps([r.status_code, r.json(), h.status_code]))"
)


def _probe(tmp_path: Path, database_url: str) -> tuple[int, dict[str, object], int]:
    env = dict(os.environ)
    env.update(
        CARELOOP_VAR_DIR=str(tmp_path / "var"),
        CARELOOP_DATABASE_URL=database_url,
        CARELOOP_ENV="test",
    )
    result = subprocess.run(
        [sys.executable, "-m", "careloop", "shell", "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    status, body, health = json.loads(result.stdout.strip().splitlines()[-1])
    return status, body, health


def test_readyz_reports_an_unreachable_postgres_while_healthz_stays_up(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    status, body, health = _probe(tmp_path, "postgres://careloop@127.0.0.1:1/careloop")
    assert status == 503
    assert body == {"status": "unavailable", "database": "unreachable"}
    assert health == 200


def test_readyz_reports_a_database_file_that_cannot_be_opened(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    status, body, _ = _probe(tmp_path, f"sqlite:///{broken}")
    assert status == 503
    assert body["database"] == "unreachable"


def test_readyz_reports_pending_migrations(tmp_path: Path) -> None:
    status, body, _ = _probe(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    assert status == 503
    assert body["database"] == "ok"
    assert isinstance(body["pending_migrations"], int) and body["pending_migrations"] > 0
