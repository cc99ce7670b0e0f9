"""The console operator: whoever runs `careloop <command>` on the host.

Commands do not sign in as a staff account; they act as this one actor. It has its own
row in the permission table (`careloop.security.permissions.CONSOLE`), which every
command's declared permissions are checked against (`careloop.core.cli`), and the
audit log records it as the system actor "console", labelled with the operating-system
account that ran the command: the host login is who did it.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

CONSOLE_ACTOR_ID = "console"


@dataclass(frozen=True)
class ConsoleActor:
    """The operator at the console, known by the OS account running the process."""

    os_user: str


def console_actor() -> ConsoleActor:
    """The console operator of this process."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        # A container user with no passwd entry and no LOGNAME: the uid still says who.
        name = f"uid {os.getuid()}"
    return ConsoleActor(os_user=name)
