"""The one interface every channel implements, and the two ways a send can fail.

`send` either returns the provider's id for the message or raises: a
`TemporaryFailure` (try again later, after `retry_after` seconds if the provider said
so) or a `PermanentFailure` (this message will never go; dead-letter it). Reasons are
coded words and provider codes, never provider text, which may quote an address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from careloop.outreach.models import Message


class SendFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:200]


class TemporaryFailure(SendFailure):
    """Try again later: the provider is down, busy, or rate-limiting us."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentFailure(SendFailure):
    """This message will never be accepted as it is (bad address, refused content)."""


class Channel(Protocol):
    # The vendor's name in the BAA registry (careloop.consent.baa).
    vendor_name: str

    def send(self, message: Message) -> str:
        """Hand the message to the provider once; the provider's id for it."""
        ...
