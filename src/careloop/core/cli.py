"""The base for careloop's own management commands: gated, and mistakes cost one line.

Every command declares what it does as (operation, resource) pairs of the permission
table (`CareloopCommand.permissions`); before it runs, by `careloop <command>` or by
`call_command`, the pairs are checked against the console operator's row
(`careloop.security.permissions.console_require`). A command that declares nothing, or
something the row does not allow, does not run.

Django prints argparse's usage block for a bad option and `CommandError: ...` for a
failure. careloop's commands print `careloop <command>: <what is wrong and what to do>`
on one line and exit non-zero, whichever of the two went wrong.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser, SystemCheckError

if TYPE_CHECKING:
    from careloop.security.permissions import Op, Resource

# The exit status of a command the permission table refuses (sysexits.h EX_NOPERM).
DENIED_EXIT = 77


class OneLineCommandParser(CommandParser):
    """A CommandParser whose errors, on the command line, are one line on stderr."""

    command_name = "careloop"

    def error(self, message: str) -> NoReturn:
        if self.called_from_command_line:
            name = self.command_name
            self.exit(2, f"careloop {name}: {message}. See 'careloop {name} --help'.\n")
        raise CommandError(f"Error: {message}")


class CareloopCommand(BaseCommand):
    """Base class for careloop's commands (serve, run, worker, ...)."""

    # What the command does, as (operation, resource) pairs of the permission table:
    # the union over its subcommands. Required: the empty default refuses to run.
    permissions: ClassVar[tuple[tuple[Op, Resource], ...]] = ()

    @property
    def command_name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django builds its CommandParser inline, with no hook to choose the class; the
        # subclass only overrides `error` and adds no state, so re-classing is safe.
        parser.__class__ = OneLineCommandParser
        assert isinstance(parser, OneLineCommandParser)  # noqa: S101 - narrows for mypy
        parser.command_name = subcommand
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            self._gate()
            return super().execute(*args, **options)
        except CommandError as error:
            from_cli = getattr(self, "_called_from_command_line", False)
            if not from_cli or options.get("traceback") or isinstance(error, SystemCheckError):
                raise
            message = " ".join(str(error).split())
            self.stderr.write(f"careloop {self.command_name}: {message}")
            sys.exit(error.returncode)

    def fail(self, message: str, *, code: int = 2) -> NoReturn:
        """Stop with one line saying what is wrong and what to do."""
        raise CommandError(message, returncode=code)

    def _gate(self) -> None:
        """Refuse to run unless the console row allows every declared pair.

        `execute` is the one door for both `careloop <command>` and `call_command`
        (which `careloop run` uses for the demo), so the check cannot be walked around.
        """
        from careloop.core.errors import PermissionDenied
        from careloop.security.permissions import console_require

        if not self.permissions:
            raise CommandError(
                f"{type(self).__module__} declares no permissions, so it may not run; "
                "declare the (Op, Resource) pairs it performs in `permissions`",
                returncode=DENIED_EXIT,
            )
        try:
            console_require(self.permissions)
        except PermissionDenied as error:
            raise CommandError(
                f"{error}; see docs/permissions.md", returncode=DENIED_EXIT
            ) from None
