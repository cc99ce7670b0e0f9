"""The server's listening socket, bound by careloop before gunicorn starts.

Gunicorn, left to bind, retries for five seconds and logs several lines per failure.
Binding here first turns a bad address or a busy port into one sentence, and gunicorn
then takes over the already-bound socket (`fd://N`), so there is no window in which
another program could take the port between the check and the start.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

BACKLOG = 2048


class ListenError(Exception):
    """The address cannot be listened on; the message says why and what to do."""


@dataclass(frozen=True)
class BindAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def bind_parse(text: str) -> BindAddress:
    """Parse HOST:PORT or [IPv6]:PORT; HOST may be a name such as localhost."""
    hint = "Write HOST:PORT, for example 127.0.0.1:8443 or [::1]:8443."
    value = text.strip()
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise ListenError(f"--bind {text!r} is not a valid address. {hint}")
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or ":" in host:
            raise ListenError(f"--bind {text!r} is not a valid address. {hint}")
    if not host:
        raise ListenError(f"--bind {text!r} names no host. {hint}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ListenError(f"--bind {text!r} has no valid port (0-65535). {hint}")
    return BindAddress(host=host, port=int(port_text))


def listener_open(address: BindAddress) -> socket.socket:
    """A socket bound to `address` and listening; raises ListenError with the reason."""
    family, sockaddr = _resolve(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Same options gunicorn sets: a restart must not wait out TIME_WAIT connections.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        raise ListenError(_bind_failure(address, error)) from None
    return sock


def bound_port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def _resolve(address: BindAddress) -> tuple[socket.AddressFamily, tuple[str, int]]:
    flags: int = socket.AI_PASSIVE
    try:
        ipaddress.ip_address(address.host)
        flags |= socket.AI_NUMERICHOST
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=flags)
    except socket.gaierror:
        raise ListenError(
            f"cannot bind to {address}: the host {address.host!r} is not an address of this "
            "machine or a name that resolves. Use an IP address such as 127.0.0.1."
        ) from None
    family, _, _, _, sockaddr = found[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def _bind_failure(address: BindAddress, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (
            f"{address} is already in use by another program. Stop it, or choose another "
            "port with --bind HOST:PORT."
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot bind to {address}: {address.host} is not an address of this machine. "
            "Use 127.0.0.1, or an address this machine has."
        )
    if error.errno == errno.EACCES:
        return (
            f"cannot bind to {address}: permission denied (ports below 1024 need privileges). "
            "Use a port of 1024 or above, such as 8443."
        )
    return f"cannot bind to {address}: {error.strerror or error}."
