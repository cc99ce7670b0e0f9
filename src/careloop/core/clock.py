"""The one clock. Code asks `now()` for the time so tests can move it (`frozen`)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager

_frozen: datetime.datetime | None = None


def now() -> datetime.datetime:
    if _frozen is not None:
        return _frozen
    return datetime.datetime.now(tz=datetime.UTC)


def today() -> datetime.date:
    return now().date()


@contextmanager
def frozen(at: datetime.datetime) -> Iterator[None]:
    """Pin `now()` to an aware datetime for the duration of the block."""
    if at.tzinfo is None:
        raise ValueError("frozen() needs an aware datetime")
    global _frozen
    previous, _frozen = _frozen, at
    try:
        yield
    finally:
        _frozen = previous
