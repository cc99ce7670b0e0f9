from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import IntegrityError, transaction

from careloop.core.cli import CareloopCommand
from careloop.security.audit import UNSEALED_ALARM_SECONDS, audit_record, audit_seal
from careloop.security.audit_chain import audit_verify
from careloop.security.console import console_actor
from careloop.security.permissions import Op, Resource


def _anchor(value: str) -> tuple[int, bytes]:
    seq, _, digest = value.partition(":")
    try:
        parsed = int(seq), bytes.fromhex(digest)
    except ValueError:
        raise CommandError("--anchor takes SEQ:HASH as printed by an earlier verify") from None
    if len(parsed[1]) != 32:
        raise CommandError("--anchor takes SEQ:HASH with a 64-hex-digit hash")
    return parsed


class Command(CareloopCommand):
    help = "Verify the audit log's hash chain."
    permissions = ((Op.READ, Resource.AUDIT),)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser(
            "verify", help="Walk the chain and name the first broken event; exit 1 if broken."
        )
        verify.add_argument(
            "--from-seq", type=int, default=1, help="Start at this event (trusting the one before)."
        )
        verify.add_argument(
            "--anchor",
            type=str,
            default="",
            help="SEQ:HASH from an earlier verify, kept outside the database: must still match.",
        )
        verify.add_argument(
            "--no-seal",
            action="store_true",
            help="Do not seal pending events first (to check that the workers' sealer keeps up).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["from_seq"] < 1:
            raise CommandError("--from-seq must be at least 1.")
        anchor = _anchor(options["anchor"]) if options["anchor"] else None
        started = time.monotonic()
        if not options["no_seal"]:
            # Chain what the workers' sealer has not reached yet, so the walk covers
            # every committed event.
            audit_seal()
        report = audit_verify(
            from_seq=options["from_seq"],
            anchor=anchor,
            unsealed_after=UNSEALED_ALARM_SECONDS,
            progress=lambda checked: self.stderr.write(f"{checked} events checked")
            if options["verbosity"] > 1
            else None,
        )
        try:
            with transaction.atomic():
                audit_record(
                    action="audit.verify",
                    actor=console_actor(),
                    resource_type="AuditEvent",
                    resource_id=str(report.last_seq),
                    outcome="failure" if report.broken or report.stale_unsealed else "success",
                )
        except IntegrityError:
            # A chain head out of step with the events refuses new events; say so, and
            # still name the break found, which is the more useful line.
            if report.broken is None:
                raise
            raise CommandError(
                f"{report.broken}; new audit events are refused until this is repaired",
                returncode=1,
            ) from None
        if report.broken is not None:
            raise CommandError(str(report.broken), returncode=1)
        if report.stale_unsealed:
            raise CommandError(
                f"{report.stale_unsealed} audit events unsealed for over "
                f"{UNSEALED_ALARM_SECONDS:.0f} seconds: is a worker running? "
                f"(the chain up to {report.last_seq} is intact)",
                returncode=1,
            )
        seconds = time.monotonic() - started
        self.stdout.write(
            f"audit chain intact: {report.checked} events from seq {options['from_seq']} "
            f"in {seconds:.1f}s; head {report.last_seq}:{report.last_hash.hex()}"
        )
