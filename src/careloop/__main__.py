"""The `careloop` command: Django's manage.py plus careloop's own commands.

Errors a person can fix (configuration, an unreachable database, a port in use)
print one line and exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careloop.settings")
    arguments = argv or sys.argv
    if len(arguments) > 1 and arguments[1] in {"worker", "mllp"}:
        from careloop.core.shutdown import listen_early

        listen_early()
    from careloop.core.config import ConfigError

    try:
        from django.core.management import execute_from_command_line
        from django.db import DatabaseError

        try:
            execute_from_command_line(arguments)
        except DatabaseError as error:
            if type(error.__cause__).__name__ == "WrongKeyError":
                sys.stderr.write(f"careloop: {error.__cause__}\n")
                sys.exit(3)
            first_line = (
                str(error).strip().splitlines()[0] if str(error).strip() else "no reason given"
            )
            sys.stderr.write(
                f"careloop: the database is not reachable ({first_line}). "
                "Check CARELOOP_DATABASE_URL and that the server is running.\n"
            )
            sys.exit(3)
    except ConfigError as error:
        sys.stderr.write(f"careloop: {error}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
