"""Fixtures for the demo tests: small exports made once per module through the command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from django.core.management import call_command

AS_OF = "2026-11-01"


def export(out: Path, *, patients: int, seed: int) -> Path:
    call_command("demo", patients=patients, seed=seed, format="ndjson", out=str(out), as_of=AS_OF)
    return out


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        return [orjson.loads(line) for line in handle]
