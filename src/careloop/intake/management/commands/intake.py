"""`careloop intake import FILE [--purpose intake]` | `careloop intake list`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from careloop.core.cli import CareloopCommand
from careloop.intake.definition import QuestionnaireInvalid, questionnaire_parse
from careloop.intake.models import Purpose, Questionnaire
from careloop.intake.services import builtin_install, questionnaire_import
from careloop.security.console import console_actor
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Intake forms and surveys: import a FHIR R4 Questionnaire, list questionnaires."
    permissions = ((Op.READ, Resource.CONFIG), (Op.WRITE, Resource.CONFIG))

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("import", help="Import a Questionnaire JSON file.")
        load.add_argument("file", type=Path)
        load.add_argument("--purpose", choices=Purpose.values, default=Purpose.INTAKE)
        sub.add_parser("list", help="List questionnaires (the built-in surveys included).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            builtin_install()
            for q in Questionnaire.objects.all():
                self.stdout.write(
                    f"{q.pk}\t{q.purpose}\t{q.status}\t{q.url}|{q.version}\t{q.title}"
                )
            return
        path: Path = options["file"]
        try:
            text = path.read_bytes()
        except OSError as error:
            self.fail(f"cannot read {path}: {error.strerror or error}.")
        try:
            questionnaire = questionnaire_import(
                actor=console_actor(), parsed=questionnaire_parse(text), purpose=options["purpose"]
            )
        except QuestionnaireInvalid as invalid:
            self.fail(
                f"{path} is not a Questionnaire careloop can import: " + "; ".join(invalid.errors)
            )
        self.stdout.write(
            f"Imported {questionnaire.title!r} ({questionnaire.url}|{questionnaire.version}) "
            f"as {questionnaire.pk}."
        )
