"""`careloop consent publish --kind npp_ack --version 2026-11 --title ... --file body.txt`.

Run at the console by an administrator; the text is the practice's template, not PHI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from careloop.consent.documents import DocumentError, consent_document_publish
from careloop.consent.models import ConsentKind
from careloop.core.cli import CareloopCommand
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Publish a new version of a consent document."
    # The practice's template is configuration, as on the web (consent_document_publish).
    permissions = ((Op.WRITE, Resource.CONFIG),)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        publish = sub.add_parser("publish", help="Publish a new version of a consent document.")
        publish.add_argument("--kind", required=True, choices=ConsentKind.values)
        publish.add_argument("--version", dest="label", required=True)
        publish.add_argument("--title", required=True)
        publish.add_argument("--file", required=True, help="UTF-8 text of the document")
        publish.add_argument(
            "--optional",
            action="store_true",
            help="patients need not acknowledge it (default: required)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            body = Path(options["file"]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            self.fail(f"cannot read {options['file']}: {error.__class__.__name__}")
        try:
            document = consent_document_publish(
                actor=None,
                kind=ConsentKind(options["kind"]),
                version=options["label"],
                title=options["title"],
                body=body,
                requires_acknowledgement=not options["optional"],
            )
        except DocumentError as error:
            self.fail(str(error))
        self.stdout.write(
            f"Published {document.kind} version {document.version} (sha256 {document.body_sha256})."
        )
