"""`careloop outreach bounces --maildir DIR | journeys --install [--key KEY ...] |
dispatch [--until-empty] [--patience SECONDS]`.

`journeys --install` creates the built-in journeys that do not exist yet
(careloop.outreach.builtin_journeys); an admin's edits are never overwritten.

`bounces` reads every mail waiting in the bounce mailbox (a Maildir: `new/`, `cur/`) through
careloop.outreach.bounces: hard bounces stop the address, complaints and mailed
unsubscribe requests record e-mail opt-outs. Handled mail moves to the Maildir's
`.handled` folder, anything else (an auto-reply, a report about no message of ours) to
`.unhandled` for a person. Prints the count per outcome; no address or mail text.
Safe to run again or twice at once: each report is acted on once.

`dispatch` claims and sends the due messages now, as the worker's sweep does, and prints
the outcomes counted (no patient in them). With `--until-empty` it goes on until no
message is queued or being sent, waiting for retries and for dead workers' leases that
come due within `--patience` seconds (default 60); what is due later (quiet hours, long
backoffs) is left to the sweep. A database that goes away mid-batch is waited for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from careloop.core.cli import CareloopCommand, OneLineCommandParser
from careloop.outreach.bounces import maildir_process
from careloop.outreach.builtin_journeys import journeys_install_builtin
from careloop.outreach.dispatch import dispatch_due, dispatch_until_empty
from careloop.security.permissions import Op, Resource


class _SubcommandParser(OneLineCommandParser):
    command_name = "outreach"


class Command(CareloopCommand):
    help = (
        "Outreach: install the built-in journeys; process bounces and complaints; "
        "send the due messages now."
    )
    # Journeys are practice configuration. A hard bounce stops an e-mail address
    # (contact); complaints and unsubscribes are opt-outs (consent); marking the bounced
    # message is part of the same act. `dispatch`, like `careloop worker`, acts (and is
    # audited) as the system, not as the operator who started it.
    permissions = (
        (Op.WRITE, Resource.CONFIG),
        (Op.WRITE, Resource.CONTACT),
        (Op.WRITE, Resource.CONSENT),
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=_SubcommandParser)
        bounces = sub.add_parser("bounces", help="Process the bounce mailbox (a Maildir).")
        bounces.add_argument("--maildir", required=True, type=Path, metavar="DIR")
        journeys = sub.add_parser("journeys", help="Manage the built-in journeys.")
        journeys.add_argument("--install", action="store_true", help="create missing ones")
        journeys.add_argument("--key", action="append", metavar="KEY", help="only these")
        dispatch = sub.add_parser("dispatch", help="Send the due messages now.")
        dispatch.add_argument(
            "--until-empty", action="store_true", help="until nothing is queued or being sent"
        )
        dispatch.add_argument(
            "--patience",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="with --until-empty: wait at most this long for the next message to come due",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "journeys":
            self._journeys(options)
            return
        if options["action"] == "dispatch":
            self._dispatch(options)
            return
        self._bounces(options)

    def _dispatch(self, options: dict[str, Any]) -> None:
        if options["until_empty"]:
            outcomes = dispatch_until_empty(patience=options["patience"])
        else:
            outcomes = dispatch_due()
        shown = " ".join(f"{name}={count}" for name, count in sorted(outcomes.items()))
        self.stdout.write(shown or "nothing due")

    def _journeys(self, options: dict[str, Any]) -> None:
        if not options["install"]:
            self.fail("say what to do: --install")
        made = journeys_install_builtin(keys=options["key"])
        self.stdout.write(f"{made} built-in journeys installed")

    def _bounces(self, options: dict[str, Any]) -> None:
        folder: Path = options["maildir"]
        if not (folder / "new").is_dir() or not (folder / "cur").is_dir():
            self.fail(f"{folder} is not a Maildir (it needs new/ and cur/)")
        counts = maildir_process(folder)
        if not counts:
            self.stdout.write("no mail waiting")
            return
        for outcome, count in sorted(counts.items()):
            self.stdout.write(f"{outcome:<16} {count:>6}")
