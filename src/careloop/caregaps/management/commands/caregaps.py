"""`careloop caregaps load-valuesets | evaluate | report | cluster`: terminology, runs,
reports, and the facts' layout.

`evaluate [--measure ID ...] [--period YEAR] [--as-of DATE] [--horizon DAYS]
[--patient ID]` evaluates the measures (all by default) over the whole population for
the calendar year (by default the year of the as-of date, which defaults to today),
stores memberships and rolling statuses as of the date and brings the gaps in line,
with a progress bar on standard error; it prints a table of counts per status (no
patient in it). With `--patient` (careloop's id or the source system's Patient id) it
re-evaluates that one patient in the measures' current runs, as an import would.

`report --measure ID --period-start DATE --period-end DATE [--patient ID | --each]
[--out FILE]` writes FHIR MeasureReports: `summary` by default, `individual` for one
patient (careloop's id or the source system's Patient id), or one individual report per
patient as NDJSON (`--each`). It reads the measure's current run when that is of exactly
the period, else evaluates (careloop.caregaps.report.report_run). A report is a PHI
export: audited as `fhir.export` by the console operator before the first byte is
written. `--out` writes a temporary file beside FILE (mode 0600) and renames it.

`cluster` rewrites the clinical facts in code order on PostgreSQL
(careloop.clinical.layout): after a large import and nightly, so that population runs
read a value set's facts together. It locks the facts while it runs.

`load-valuesets`: without PATH, (re)loads the expansions shipped with careloop. PATH
may be a folder in the published layout (`measures/<ID>/valuesets/*.json`), a ValueSet
JSON file or a bundle made by `--save-bundle` (which is how the shipped file is made).
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from django.core.management.base import CommandError, CommandParser
from django.db.models import Count

from careloop.caregaps.evaluate import (
    DEFAULT_HORIZON_DAYS,
    Period,
    caregaps_refresh,
    current_runs,
    measure_evaluate,
)
from careloop.caregaps.measure import Measure, measure_get, measures
from careloop.caregaps.models import GapStatus, MeasureRun, PatientMeasureResult
from careloop.caregaps.report import (
    PatientNotFound,
    individual_report,
    population_reports,
    report_patient,
    report_period,
    report_run,
    summary_report,
)
from careloop.caregaps.terminology import (
    SHIPPED,
    TerminologyError,
    read_bundle,
    read_path,
    valuesets_load,
    write_bundle,
)
from careloop.clinical.layout import facts_cluster
from careloop.core.cli import CareloopCommand, OneLineCommandParser
from careloop.core.clock import now
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.permissions import Op, Resource


class _SubcommandParser(OneLineCommandParser):
    """A subcommand's parser: its errors are one line on the command line too."""

    command_name = "caregaps"


class Command(CareloopCommand):
    help = "Care gaps: load the value-set expansions; evaluate the measures; report."
    # A report may evaluate (write) and exports MeasureReports (export); no subcommand
    # lets the console browse a record.
    permissions = (
        (Op.WRITE, Resource.CONFIG),
        (Op.WRITE, Resource.CLINICAL),
        (Op.EXPORT, Resource.CLINICAL),
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=_SubcommandParser)
        load = sub.add_parser("load-valuesets", help="Load value-set expansions.")
        load.add_argument("path", nargs="?", type=Path, help=f"default: {SHIPPED.name}")
        load.add_argument("--save-bundle", type=Path, help="also write them as a bundle")
        evaluate = sub.add_parser("evaluate", help="Evaluate measures; store statuses.")
        evaluate.add_argument("--measure", action="append", default=[], metavar="ID")
        evaluate.add_argument("--period", type=int, metavar="YEAR")
        evaluate.add_argument("--as-of", type=_date, metavar="YYYY-MM-DD")
        evaluate.add_argument("--horizon", type=int, default=DEFAULT_HORIZON_DAYS, metavar="DAYS")
        evaluate.add_argument(
            "--patient", metavar="ID", help="only this patient (careloop's or the source's id)"
        )
        report = sub.add_parser("report", help="Write FHIR MeasureReports (summary by default).")
        report.add_argument("--measure", required=True, metavar="ID")
        # Dates are checked in `_report`, so a bad one is one line however it is run.
        report.add_argument("--period-start", required=True, metavar="YYYY-MM-DD")
        report.add_argument("--period-end", required=True, metavar="YYYY-MM-DD")
        report.add_argument("--patient", metavar="ID", help="careloop's or the source's id")
        report.add_argument("--each", action="store_true", help="one report per patient, NDJSON")
        report.add_argument("--out", type=Path, metavar="FILE", help="default: standard output")
        sub.add_parser(
            "cluster", help="Lay the clinical facts out by code for population measures."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "evaluate":
            self._evaluate(options)
            return
        if options["action"] == "report":
            self._report(options)
            return
        if options["action"] == "cluster":
            result = facts_cluster()
            if result.clustered:
                self.stdout.write(f"clinical facts clustered by code in {result.seconds:.1f} s")
            else:
                self.stdout.write(f"nothing to do: {result.reason}")
            return
        path: Path | None = options["path"]
        try:
            expansions = read_path(path) if path is not None else read_bundle()
        except TerminologyError as error:
            self.fail(str(error))
        codes = valuesets_load(expansions=expansions)
        if options["save_bundle"] is not None:
            write_bundle(expansions, options["save_bundle"])
        self.stdout.write(f"{len(expansions)} value sets, {codes} codes loaded")

    def _evaluate(self, options: dict[str, Any]) -> None:
        as_of: datetime.date = options["as_of"] or now().date()
        period = Period.year(options["period"] or as_of.year)
        if not 1 <= options["horizon"] <= 3650:
            self.fail("--horizon must be 1 to 3650 days")
        try:
            chosen = [measure_get(m) for m in options["measure"]] or list(measures().values())
        except KeyError as error:
            self.fail(str(error.args[0]))
        if options["patient"] is not None:
            self._evaluate_patient(options["patient"], chosen)
            return
        self.stdout.write(f"period {period.start} to {period.end}, statuses as of {as_of}")
        runs: list[MeasureRun] = []
        for done, measure in enumerate(chosen):
            self._progress(done, len(chosen), f"{measure.id}...")
            runs.append(
                measure_evaluate(
                    measure=measure,
                    period=period,
                    as_of=as_of,
                    horizon_days=options["horizon"],
                    actor=console_actor(),
                )
            )
        self._progress(len(chosen), len(chosen), "done")
        self._summary(runs)

    def _evaluate_patient(self, key: str, chosen: list[Measure]) -> None:
        """One patient: re-evaluated in the measures' current runs, gaps updated (what an
        import of that patient's records does)."""
        try:
            patient_id = report_patient(key)
        except PatientNotFound as error:
            self.fail(f"--patient: {error}", code=1)
        wanted = {m.id for m in chosen}
        current = [run for run in current_runs() if run.measure in wanted]
        if not current:
            self.fail("no whole-population run of these measures yet: evaluate without --patient")
        caregaps_refresh(patient_ids=[patient_id], runs=current)
        self._summary(current, patient_id=patient_id)

    def _progress(self, done: int, total: int, label: str) -> None:
        """A progress bar on standard error (one line rewritten on a terminal)."""
        width = 30
        filled = width * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}"
        if self.stderr.isatty():
            self.stderr.write(f"\r{line:<70}", ending="\n" if done == total else "")
            self.stderr.flush()
        else:
            self.stderr.write(line)

    def _summary(self, runs: list[MeasureRun], *, patient_id: uuid.UUID | None = None) -> None:
        """Counts per rolling status (no patient in them), per measure and group."""
        statuses = [s for s, _label in GapStatus.choices]
        header = f"{'measure':<10} {'group':>5} " + " ".join(f"{s:>14}" for s in statuses)
        self.stdout.write(header + f" {'seconds':>8}  run")
        for run in runs:
            rows = PatientMeasureResult.objects.filter(run=run)
            if patient_id is not None:
                rows = rows.filter(patient_id=patient_id)
            counts: dict[tuple[int, str], int] = {
                (r["group"], r["status"]): r["n"]
                for r in rows.values("group", "status").annotate(n=Count("id"))
            }
            groups = sorted({g for g, _s in counts}) or [1]
            for group in groups:
                cells = " ".join(f"{counts.get((group, s), 0):>14,}" for s in statuses)
                seconds = f"{run.seconds or 0:8.2f}" if patient_id is None else f"{'':>8}"
                self.stdout.write(f"{run.measure:<10} {group:>5} {cells} {seconds}  {run.pk}")

    def _report(self, options: dict[str, Any]) -> None:
        start = _report_date(options["period_start"], "--period-start")
        end = _report_date(options["period_end"], "--period-end")
        try:
            period = report_period(start, end)
            measure = measure_get(options["measure"])
        except ValueError as error:
            self.fail(f"--period-end: {error}")
        except KeyError as error:
            self.fail(str(error.args[0]))
        if options["patient"] is not None and options["each"]:
            self.fail("give --patient ID or --each, not both")
        out: Path | None = options["out"]
        if out is not None and not out.resolve().parent.is_dir():
            self.fail(f"--out: the folder {out.resolve().parent} does not exist")
        patient_id = None
        if options["patient"] is not None:
            try:
                patient_id = report_patient(options["patient"])
            except PatientNotFound as error:
                self.fail(f"--patient: {error}", code=1)
        run = report_run(
            measure=measure, period=period, patient_id=patient_id, actor=console_actor()
        )
        kind = "individual" if patient_id else "each" if options["each"] else "summary"
        _audit_export(measure, run.pk, kind, patient_id)
        if options["each"]:
            lines: Iterable[bytes] = (orjson.dumps(r) + b"\n" for r in population_reports(run))
        else:
            one = individual_report(run, patient_id) if patient_id else summary_report(run)
            lines = [orjson.dumps(one, option=orjson.OPT_INDENT_2) + b"\n"]
        if options["out"] is None:
            for line in lines:
                self.stdout.write(line.decode("utf-8"), ending="")
            return
        written = _write_atomically(options["out"], lines)
        self.stderr.write(
            f"{kind} report of {measure.id} written to {options['out']} ({written} lines)"
        )


def _report_date(text: str, option: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} takes a date as YYYY-MM-DD", returncode=2) from None


def _audit_export(measure: Measure, run_id: int, kind: str, patient_id: Any) -> None:
    """A report leaving careloop is an export of PHI (or of figures): recorded first."""
    audit_record(
        action="fhir.export",
        actor=console_actor(),
        patient_id=patient_id,
        resource_type="MeasureReport",
        resource_id=str(run_id),
        fields=(f"measure={measure.id}", f"type={kind}"),
    )


def _write_atomically(target: Path, lines: Iterable[bytes]) -> int:
    """Write to a temporary file beside `target` (owner-only), then rename it over
    `target`: a reader never sees half a report, and a failure leaves no partial file."""
    folder = target.resolve().parent
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            count = 0
            for line in lines:
                out.write(line)
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return count


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None
