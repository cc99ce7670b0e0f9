from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from careloop.core.cli import CareloopCommand
from careloop.core.worker import Worker
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Run background tasks and the periodic sweep until SIGTERM or Ctrl-C."
    # It starts the configured jobs, which then act (and are audited) as system jobs,
    # not as the operator who started the process.
    permissions = ((Op.READ, Resource.CONFIG),)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sweep-every",
            type=float,
            default=float(settings.WORKER_SWEEP_SECONDS),
            help="Seconds between sweeps (default: CARELOOP_SWEEP_SECONDS, 5).",
        )
        parser.add_argument(
            "--queue", action="append", dest="queues", help="Queue to serve (repeatable)."
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Exit once there is nothing left to do (for scripts and tests).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        worker = Worker(
            sweep_every=options["sweep_every"],
            queues=options["queues"],
            burst=options["burst"],
        )
        worker.install_signal_handlers()
        worker.run()
