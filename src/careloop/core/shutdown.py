"""A stop request that arrives while a long-running command is still starting up.

`careloop run` forwards Ctrl-C to its worker, which may still be importing Django when
the signal lands; without this the default handler would kill it mid-import with a
KeyboardInterrupt (exit 130) instead of a clean stop. `listen_early` is installed first
thing by the CLI for long-running commands; the command's own handlers take over later
and see the request through `requested`.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

requested = threading.Event()


def _remember(signum: int, frame: FrameType | None) -> None:
    requested.set()


def listen_early() -> None:
    signal.signal(signal.SIGINT, _remember)
    signal.signal(signal.SIGTERM, _remember)
