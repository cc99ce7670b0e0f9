"""Bad input to `careloop demo` gets one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patients": 0}, "--patients must be at least 1"),
        ({"patients": -5}, "--patients must be at least 1"),
        ({"patients": "many"}, "--patients must be a whole number"),
        ({"format": "xml"}, "--format must be one of db, ndjson"),
        ({"format": "ndjson"}, "--format ndjson needs --out"),
        ({"as_of": "yesterday"}, "--as-of must be a date"),
    ],
)
def test_bad_options_are_refused_with_one_line(options: dict[str, object], message: str) -> None:
    with pytest.raises(CommandError, match=message) as refused:
        call_command("demo", **options)
    assert "\n" not in str(refused.value)


def test_an_unwritable_out_directory_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(CommandError, match="cannot create --out directory"):
        call_command("demo", patients=1, format="ndjson", out=str(blocker / "export"))


def test_the_command_line_prints_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "careloop", "demo", "--patients", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "careloop demo: --patients must be at least 1, not 0"
    ]


def test_summary_line_names_patients_and_resources(tmp_path: Path) -> None:
    from io import StringIO

    out = StringIO()
    call_command(
        "demo", patients=3, format="ndjson", out=str(tmp_path), as_of="2026-11-01", stdout=out
    )
    line = out.getvalue().strip()
    assert "\n" not in line
    assert line.startswith("careloop demo: 3 patients")
    assert "Patient=3" in line and "patients/s" in line
