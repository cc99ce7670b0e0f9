"""The one interface every channel implements, and the ways a send can fail.

`send` either returns the provider's id for the message or raises: a
`TemporaryFailure` (try again later, after `retry_after` seconds if the provider said
so), an `UnknownOutcome` (the request may have reached the provider: reconcile before
any resend) or a `PermanentFailure` (this message will never go; dead-letter it).
Reasons are coded words and provider codes, never provider text, which may quote an
address.

A channel whose provider can be asked what it has (`Reconcilable.lookup`) lets the
dispatcher settle a message whose fate is unknown after a crash without resending it;
one that cannot be asked (SMTP) must make a resend recognisable instead.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import httpx

if TYPE_CHECKING:
    from careloop.outreach.models import Message


_http_lock = threading.Lock()
_http: tuple[int, httpx.Client] | None = None


def provider_http() -> httpx.Client:
    """This process's HTTP client for providers' REST APIs (SMS, voice).

    One per process, so its TLS context and kept-alive connections are made once, not
    per message (a fresh client costs tens of milliseconds of CPU); a child process
    after a fork makes its own rather than sharing the parent's sockets. Callers pass
    full URLs and their own timeouts.
    """
    global _http
    pid = os.getpid()
    with _http_lock:
        if _http is None or _http[0] != pid:
            _http = (pid, httpx.Client(limits=httpx.Limits(max_keepalive_connections=32)))
        return _http[1]


class SendFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:200]


class TemporaryFailure(SendFailure):
    """Try again later: the provider is down, busy, or rate-limiting us."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class UnknownOutcome(TemporaryFailure):
    """The request went out but no answer came back (a read timeout, a dropped
    connection, an answer we could not read): the provider may have the message."""


class PermanentFailure(SendFailure):
    """This message will never be accepted as it is (bad address, refused content)."""


@dataclass(frozen=True)
class Found:
    """The provider's record of a message we may have sent: its id and coded status."""

    provider_id: str
    status: str


class Channel(Protocol):
    # The vendor's name in the BAA registry (careloop.consent.baa).
    vendor_name: str

    def send(self, message: Message) -> str:
        """Hand the message to the provider once; the provider's id for it."""
        ...


@runtime_checkable
class Reconcilable(Protocol):
    """A channel whose provider can say whether it already has a message."""

    def lookup(self, message: Message) -> Found | None:
        """The provider's record of `message` if it has one, else None; raises
        `TemporaryFailure` when the provider cannot be asked now."""
        ...
