"""Optimistic concurrency: an `ETag` on every single-resource GET, `If-Match` on updates.

No model grows a version column for this. A tag is an HMAC (keyed with SECRET_KEY) over
the representation the API sends, or over the row's id and `updated_at` where the model
keeps one. Keyed, because a plain hash of a contact point or a coverage is a hash of
class-I values with little entropy (a phone number), which anyone could reverse by
trying every number; an HMAC tells a client only "same" or "changed".

An update without `If-Match` is refused with 428 (RFC 6585) so that no client can
overwrite blindly; one whose tag no longer matches with 412, before anything is written.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from careloop.api.problems import ProblemError

_TAG_CONTEXT = b"careloop.api.etag\x00"


def etag_of(representation: Any) -> str:
    """The strong entity tag (quoted) of a JSON-serialisable representation."""
    payload = orjson.dumps(representation, option=orjson.OPT_SORT_KEYS)
    digest = hmac.new(
        settings.SECRET_KEY.encode(), _TAG_CONTEXT + payload, hashlib.sha256
    ).hexdigest()
    return f'"{digest[:32]}"'


def set_etag(response: HttpResponse, tag: str) -> None:
    response["ETag"] = tag


def _matches(header: str, current: str) -> bool:
    # RFC 9110 §13.1.1: `*` or a list of tags, compared strongly (a weak tag never matches).
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or current in candidates


def require_if_match(request: HttpRequest, current: str, *, required: bool = True) -> None:
    """Refuse the update unless the client holds the current representation."""
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        if not required:
            return
        raise ProblemError(
            428,
            "Send `If-Match` with the ETag of the representation you are changing "
            "(from a GET), so that you cannot overwrite a change you have not seen.",
        )
    if not _matches(header, current):
        raise ProblemError(
            412,
            "The resource changed since you read it; GET it again and retry with its "
            "new ETag. Nothing was changed.",
        )
