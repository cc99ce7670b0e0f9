"""Run the web server and the worker as child processes and stop them together.

`careloop run` uses this for the embedded demo. The children get their own process
group, so a Ctrl-C in the terminal reaches only this process, which forwards it once:
the worker treats a second signal as "stop now", which a terminal-wide Ctrl-C plus a
forwarded one would otherwise trigger.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

POLL_SECONDS = 0.2
# Longer than the web server's graceful timeout, so a clean stop is never cut short.
STOP_TIMEOUT_SECONDS = 20.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class Child:
    name: str
    command: Sequence[str]
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Supervisor:
    children: list[Child]
    stop_signal: int | None = field(default=None, init=False)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum

    def start(self, *, env: dict[str, str]) -> None:
        for child in self.children:
            child.process = subprocess.Popen(  # noqa: S603 - our own interpreter and args
                list(child.command),
                env=env,
                stdin=subprocess.DEVNULL,
                process_group=0,
                preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
            )

    def exited(self) -> Child | None:
        """The first child that has exited, if any."""
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def wait_until_serving(self, *, host: str, port: int, timeout: float) -> bool:
        """True once https://host:port/healthz answers; False on timeout, signal or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stop_signal is not None or self.exited() is not None:
                return False
            if _healthz_answers(host=host, port=port):
                return True
            time.sleep(POLL_SECONDS)
        return False

    def wait_for_stop(self) -> None:
        """Block until a signal arrives or a child exits on its own."""
        while self.stop_signal is None and self.exited() is None:
            time.sleep(POLL_SECONDS)

    def stop(self) -> dict[str, int]:
        """Forward the stop signal, wait, kill what is left; each child's exit code."""
        signum = self.stop_signal or signal.SIGTERM
        running = [c for c in self.children if c.process is not None]
        for child in running:
            assert child.process is not None  # noqa: S101 - narrowed above
            if child.process.poll() is None:
                child.process.send_signal(signum)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        codes: dict[str, int] = {}
        for child in running:
            assert child.process is not None  # noqa: S101 - narrowed above
            try:
                codes[child.name] = child.process.wait(
                    timeout=max(0.0, deadline - time.monotonic())
                )
            except subprocess.TimeoutExpired:
                child.process.kill()
                codes[child.name] = child.process.wait()
        return codes


def _stop_with_parent() -> None:
    # In the child, before exec: ask Linux to send SIGTERM if `careloop run` dies without
    # stopping us (killed with SIGKILL, say), so no orphan keeps the port or the queue.
    # Safe as a preexec_fn because the supervisor starts no threads.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _healthz_answers(*, host: str, port: int) -> bool:
    # A readiness probe of our own child on this machine: the certificate may be
    # self-signed or issued for another name, so it is not verified here.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname=host) as conn,
        ):
            host_header = f"[{host}]" if ":" in host else host
            request = f"GET /healthz HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
            conn.sendall(request.encode())
            return conn.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
