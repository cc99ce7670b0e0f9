"""`careloop demo`: fill the database with, or export as FHIR NDJSON, a synthetic practice."""

from __future__ import annotations

import datetime
import os
import sys
import time
from argparse import ArgumentParser
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from tqdm import tqdm

from careloop.core import clock
from careloop.core.cli import CareloopCommand
from careloop.demo.generate import DemoSpec, generate, practice_for
from careloop.demo.records import PatientRec, Practice
from careloop.demo.write_db import DemoRefused, write_db
from careloop.demo.write_ndjson import write_ndjson
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.permissions import Op, Resource

FORMATS = ("db", "ndjson")


def _whole_number(raw: str, *, option: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise CommandError(f"{option} must be a whole number, not {raw!r}") from None
    return value


def _as_of(raw: str | None) -> datetime.date:
    if raw is None:
        return clock.today()
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--as-of must be a date like 2026-01-31, not {raw!r}") from None


def _writable_dir(raw: str | None) -> Path:
    if not raw:
        raise CommandError("--format ndjson needs --out DIR, the directory to write the export to")
    out = Path(raw)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot create --out directory {raw}: {error.strerror}") from None
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise CommandError(f"--out directory {raw} is not writable")
    return out


class Command(CareloopCommand):
    help = "Generate a realistic synthetic practice into the database or as FHIR NDJSON."
    # The tables `write_db` fills (careloop.demo.tables); it reads and exports nothing.
    permissions = tuple(
        (Op.WRITE, resource)
        for resource in (
            Resource.DEMOGRAPHICS,
            Resource.CONTACT,
            Resource.COVERAGE,
            Resource.APPOINTMENTS,
            Resource.CLINICAL,
            Resource.CONSENT,
        )
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--patients", default="1000", help="how many patients (default 1000)")
        parser.add_argument("--seed", default="1", help="random seed; same seed, same practice")
        parser.add_argument("--format", default="db", help="db (default) or ndjson")
        parser.add_argument("--out", default=None, help="directory for --format ndjson")
        parser.add_argument(
            "--as-of", default=None, help="the practice's 'today' (YYYY-MM-DD); default: today"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        patients = _whole_number(str(options["patients"]), option="--patients")
        if patients <= 0:
            raise CommandError(f"--patients must be at least 1, not {patients}")
        seed = _whole_number(str(options["seed"]), option="--seed")
        fmt = str(options["format"])
        if fmt not in FORMATS:
            raise CommandError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        spec = DemoSpec(
            patients=patients,
            seed=seed,
            as_of=_as_of(options["as_of"]),
            practice_name=settings.PRACTICE_NAME,
        )
        out = _writable_dir(options["out"]) if fmt == "ndjson" else None
        if fmt == "db" and options["out"]:
            raise CommandError("--out is for --format ndjson; --format db writes to the database")
        started = time.monotonic()
        counts = self._run(spec=spec, out=out)
        seconds = time.monotonic() - started
        detail = ", ".join(f"{name}={count}" for name, count in counts.items())
        self.stdout.write(
            f"careloop demo: {patients} patients (seed {seed}, as of {spec.as_of}) "
            f"in {seconds:.1f} s, {patients / max(seconds, 1e-9):.0f} patients/s; {detail}"
        )

    def _run(self, *, spec: DemoSpec, out: Path | None) -> dict[str, int]:
        practice = practice_for(spec)
        bar = tqdm(
            total=spec.patients,
            unit="patients",
            disable=not sys.stderr.isatty(),
            smoothing=0.05,
            file=sys.stderr,
        )

        def tick() -> None:
            bar.update(1)

        try:
            patients = generate(spec=spec, practice=practice)
            if out is None:
                return self._fill(practice=practice, patients=patients, on_patient=tick)
            request = (
                f"careloop demo --format ndjson --patients {spec.patients} "
                f"--seed {spec.seed} --as-of {spec.as_of}"
            )
            return write_ndjson(
                out=out,
                practice=practice,
                patients=patients,
                as_of=spec.as_of,
                request=request,
                on_patient=tick,
            )
        finally:
            bar.close()

    def _fill(
        self, *, practice: Practice, patients: Iterable[PatientRec], on_patient: Callable[[], None]
    ) -> dict[str, int]:
        """Load the practice into the database, audited as the console operator's."""
        try:
            counts = write_db(practice=practice, patients=patients, on_patient=on_patient)
        except BaseException as error:
            # The load commits in batches, so a failure (an error, Ctrl-C) may leave part
            # of it: say so.
            audit_record(
                action="demo.fill", actor=console_actor(), resource_type="demo", outcome="failure"
            )
            if isinstance(error, DemoRefused):
                raise CommandError(str(error)) from None
            raise
        audit_record(
            action="demo.fill", actor=console_actor(), resource_type="demo", fields=sorted(counts)
        )
        return counts
