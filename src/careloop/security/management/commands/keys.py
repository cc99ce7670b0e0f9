from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from careloop.core.cli import CareloopCommand
from careloop.security import crypto
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.models import DataKey
from careloop.security.permissions import Op, Resource
from careloop.security.rotation import keys_rotate, rows_not_under


class Command(CareloopCommand):
    help = "Inspect and rotate the data keys that encrypt PHI class I."
    permissions = ((Op.READ, Resource.KEYS), (Op.WRITE, Resource.KEYS))

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="List the keys and how many values each still seals.")
        rotate = sub.add_parser(
            "rotate", help="Add a new key and re-encrypt every encrypted column under it."
        )
        rotate.add_argument("--batch", type=int, default=1000, help="Rows per transaction.")
        rotate.add_argument(
            "--settle-seconds",
            type=float,
            default=crypto.ACTIVE_KEY_TTL_SECONDS + 1,
            help="How long other processes may keep using the old key (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "status":
            self._status()
            return
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        try:
            report = keys_rotate(
                batch=options["batch"],
                settle_seconds=max(0.0, options["settle_seconds"]),
                progress=lambda message: self.stderr.write(message)
                if options["verbosity"] > 1
                else None,
            )
        except BaseException:
            # A rotation stopped half-way (an error, Ctrl-C) has still added a key: leave
            # a trace of it.
            audit_record(
                action="keys.rotate",
                actor=console_actor(),
                resource_type="DataKey",
                outcome="failure",
            )
            raise
        audit_record(
            action="keys.rotate",
            actor=console_actor(),
            resource_type="DataKey",
            resource_id=str(report.new_version),
        )
        self.stdout.write(
            f"Rotated to key {report.new_version}: {report.resealed} values re-encrypted in "
            f"{report.passes} passes; every encrypted value now uses key {report.new_version}."
        )

    def _status(self) -> None:
        active = crypto.keyring.active_version()
        for key in DataKey.objects.filter(purpose=DataKey.Purpose.FIELD):
            state = "active" if key.version == active else ("retired" if key.retired_at else "old")
            self.stdout.write(
                f"field key {key.version}: {state}, created {key.created_at:%Y-%m-%d}"
            )
        self.stdout.write(f"values not under the active key: {rows_not_under(active)}")
