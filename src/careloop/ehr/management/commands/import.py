"""`careloop import fhir PATH...`: FHIR files into careloop; `careloop import quarantine`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from careloop.core.cli import CareloopCommand
from careloop.ehr import ingest
from careloop.ehr.ingest import COUNT_KEYS
from careloop.ehr.models import ImportRun, QuarantineItem, QuarantineStatus
from careloop.security.permissions import Op, Resource

SHOWN = ("read", "created", "updated", "unchanged", "older", "quarantined", "waiting", "skipped")


class Progress:
    """One self-overwriting line on a terminal: resources so far and resources/s."""

    def __init__(self, stream: Any, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.done = 0
        self.started = time.monotonic()

    def __call__(self, n: int) -> None:
        self.done += n
        if self.enabled:
            rate = self.done / max(time.monotonic() - self.started, 1e-9)
            self.stream.write(f"\r  {self.done:,} resources, {rate:,.0f}/s")
            self.stream.flush()

    def end(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")


def summary_table(run: ImportRun) -> list[str]:
    counts: dict[str, dict[str, int]] = run.counts
    width = max([len("type"), *(len(t) for t in counts)])
    lines = [f"{'type':<{width}}  " + "  ".join(f"{k:>11}" for k in SHOWN)]
    totals = dict.fromkeys(COUNT_KEYS, 0)
    for rtype in sorted(counts):
        row = counts[rtype]
        for key in COUNT_KEYS:
            totals[key] += row.get(key, 0)
        lines.append(f"{rtype:<{width}}  " + "  ".join(f"{row.get(k, 0):>11,}" for k in SHOWN))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{totals[k]:>11,}" for k in SHOWN))
    return lines


class Command(CareloopCommand):
    help = "Import FHIR R4 files (NDJSON, Bulk Data exports, Bundles); manage the quarantine."
    permissions = ((Op.WRITE, Resource.CLINICAL), (Op.WRITE, Resource.DEMOGRAPHICS))

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="what", required=True)
        fhir = sub.add_parser("fhir", help="Import FHIR files or folders.")
        fhir.add_argument("paths", nargs="+", type=Path)
        fhir.add_argument("--source", default="files", help="the sending system (default files)")
        fhir.add_argument("--batch", type=int, default=ingest.BATCH_RESOURCES)
        fhir.add_argument("--progress", action="store_true", help="show progress off a terminal")
        quarantine = sub.add_parser("quarantine", help="List or re-process quarantined items.")
        quarantine.add_argument("action", choices=["list", "reprocess"])
        quarantine.add_argument("ids", nargs="*")
        quarantine.add_argument("--all", action="store_true", help="every open item")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["what"] == "fhir":
            self._import(options)
        else:
            self._quarantine(options)

    def _import(self, options: dict[str, Any]) -> None:
        if options["batch"] < 1:
            self.fail("--batch must be at least 1.")
        tty = options["progress"] or sys.stderr.isatty()
        progress = Progress(self.stderr, tty)
        try:
            run = ingest.import_paths(
                options["paths"],
                source_name=options["source"],
                progress=progress,
                batch_size=options["batch"],
            )
        except ingest.ImportFailed as error:
            self.fail(str(error))
        finally:
            progress.end()
        seconds = max((run.finished_at - run.started_at).total_seconds(), 1e-6)  # type: ignore[operator]
        read = sum(c["read"] for c in run.counts.values())
        for line in summary_table(run):
            self.stdout.write(line)
        self.stdout.write(
            f"import {run.id}: {read:,} resources in {seconds:.1f} s ({read / seconds:,.0f}/s)"
        )
        quarantined = sum(c["quarantined"] for c in run.counts.values())
        if quarantined:
            self.fail(
                f"{quarantined:,} item(s) quarantined; see 'careloop import quarantine list'.",
                code=1,
            )

    def _quarantine(self, options: dict[str, Any]) -> None:
        if options["action"] == "list":
            items = QuarantineItem.objects.filter(status=QuarantineStatus.OPEN).select_related(
                "source"
            )
            for item in items.order_by("created_at", "line"):
                line = "" if item.line is None else f":{item.line}"
                waiting = " (waiting)" if item.waiting_for else ""
                self.stdout.write(
                    f"{item.id}\t{item.source.name}\t{item.origin}{line}\t"
                    f"{item.resource_type or '-'}\t{item.reason}{waiting}"
                )
            return
        ids = options["ids"]
        if options["all"]:
            ids = list(
                QuarantineItem.objects.filter(status=QuarantineStatus.OPEN).values_list(
                    "id", flat=True
                )
            )
        if not ids:
            self.fail("name the items to re-process (ids from 'list'), or --all.")
        run = ingest.reprocess_quarantine(item_ids=ids)
        if run is None:
            self.fail("none of those items is open and re-processable.")
        for line in summary_table(run):
            self.stdout.write(line)
