"""`careloop caregaps load-valuesets | evaluate`: the terminology, and measure runs.

`evaluate [--measure ID ...] [--period YEAR] [--as-of DATE] [--horizon DAYS]` evaluates
the measures (all by default) over the whole population for the calendar year (by
default the year of the as-of date, which defaults to today) and stores memberships and
rolling statuses as of the date; it prints how many patients each run holds, not their
rates (the console writes clinical data, it does not read it: docs/permissions.md).

`load-valuesets`: without PATH, (re)loads the expansions shipped with careloop. PATH
may be a folder in the published layout (`measures/<ID>/valuesets/*.json`), a ValueSet
JSON file or a bundle made by `--save-bundle` (which is how the shipped file is made).
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from careloop.caregaps.evaluate import DEFAULT_HORIZON_DAYS, Period, measure_evaluate
from careloop.caregaps.measure import measure_get, measures
from careloop.caregaps.terminology import (
    SHIPPED,
    TerminologyError,
    read_bundle,
    read_path,
    valuesets_load,
    write_bundle,
)
from careloop.core.cli import CareloopCommand
from careloop.core.clock import now
from careloop.security.console import console_actor
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Care gaps: load the value-set expansions; evaluate the measures."
    permissions = ((Op.WRITE, Resource.CONFIG), (Op.WRITE, Resource.CLINICAL))

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load-valuesets", help="Load value-set expansions.")
        load.add_argument("path", nargs="?", type=Path, help=f"default: {SHIPPED.name}")
        load.add_argument("--save-bundle", type=Path, help="also write them as a bundle")
        evaluate = sub.add_parser("evaluate", help="Evaluate measures; store statuses.")
        evaluate.add_argument("--measure", action="append", default=[], metavar="ID")
        evaluate.add_argument("--period", type=int, metavar="YEAR")
        evaluate.add_argument("--as-of", type=_date, metavar="YYYY-MM-DD")
        evaluate.add_argument("--horizon", type=int, default=DEFAULT_HORIZON_DAYS, metavar="DAYS")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "evaluate":
            self._evaluate(options)
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
        self.stdout.write(f"period {period.start} to {period.end}, statuses as of {as_of}")
        for measure in chosen:
            run = measure_evaluate(
                measure=measure,
                period=period,
                as_of=as_of,
                horizon_days=options["horizon"],
                actor=console_actor(),
            )
            patients = run.results.values("patient").distinct().count()
            self.stdout.write(
                f"{measure.id:<8} {patients:>9} patients  {run.seconds or 0:7.2f} s  run {run.pk}"
            )


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None
