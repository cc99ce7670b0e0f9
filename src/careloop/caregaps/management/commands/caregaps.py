"""`careloop caregaps load-valuesets [PATH] [--save-bundle FILE]`: the terminology.

Without PATH, (re)loads the expansions shipped with careloop. PATH may be a folder in
the published layout (`measures/<ID>/valuesets/*.json`), a ValueSet JSON file or a
bundle made by `--save-bundle` (which is how the shipped file is made).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from careloop.caregaps.terminology import (
    SHIPPED,
    TerminologyError,
    read_bundle,
    read_path,
    valuesets_load,
    write_bundle,
)
from careloop.core.cli import CareloopCommand
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Care gaps: load the official value-set expansions."
    permissions = ((Op.WRITE, Resource.CONFIG),)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load-valuesets", help="Load value-set expansions.")
        load.add_argument("path", nargs="?", type=Path, help=f"default: {SHIPPED.name}")
        load.add_argument("--save-bundle", type=Path, help="also write them as a bundle")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path | None = options["path"]
        try:
            expansions = read_path(path) if path is not None else read_bundle()
        except TerminologyError as error:
            self.fail(str(error))
        codes = valuesets_load(expansions=expansions)
        if options["save_bundle"] is not None:
            write_bundle(expansions, options["save_bundle"])
        self.stdout.write(f"{len(expansions)} value sets, {codes} codes loaded")
