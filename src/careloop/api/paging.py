"""Paging for list endpoints: `limit` (1–100) and an opaque `cursor`, keyed not offset.

The cursor is the sort key of the last item shown (codes, ranks, timestamps and ids:
never a class-I value, since list cursors travel in query strings), so a page never
repeats or skips an item when others are added meanwhile. The lists paged here are one
patient's contact points, coverages, notes or consents: the services return them whole
(and audit the read), and the page is cut here.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import orjson
from ninja import Query, Schema
from pydantic import Field

from careloop.api.problems import ProblemError
from careloop.api.schemas import DEFAULT_LIMIT, MAX_LIMIT

T = TypeVar("T")
Key = tuple[int | str, ...]
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class PageParams(Schema):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, Field(max_length=300)] | None = Field(
        default=None, description="`next_cursor` of the previous page; omit for the first."
    )


PageQuery = Annotated[PageParams, Query()]


def micros(at: datetime.datetime) -> int:
    """A timestamp as an exact integer sort key (floats would lose microseconds)."""
    return (at - EPOCH) // datetime.timedelta(microseconds=1)


def _encode(key: Key) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def _decode(cursor: str) -> Key:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise ProblemError(400, "The cursor is not one this API issued.") from None
    if not isinstance(values, list) or not all(
        isinstance(v, int | str) and not isinstance(v, bool) for v in values
    ):
        raise ProblemError(400, "The cursor is not one this API issued.")
    return tuple(values)


def paginate(
    items: Sequence[T],
    *,
    key: Callable[[T], Key],
    params: PageParams,
    newest_first: bool = False,
) -> tuple[list[T], str | None]:
    """The page after `params.cursor` and the cursor of the page after it (None at the end)."""
    ordered = sorted(items, key=key, reverse=newest_first)
    if params.cursor is not None:
        after = _decode(params.cursor)
        try:
            ordered = [
                item
                for item in ordered
                if (key(item) < after if newest_first else key(item) > after)
            ]
        except TypeError:  # a key of another shape: a cursor from another list
            raise ProblemError(400, "The cursor is not one this API issued.") from None
    shown = ordered[: params.limit]
    more = len(ordered) > params.limit
    return shown, _encode(key(shown[-1])) if more else None
