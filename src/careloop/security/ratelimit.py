"""Sliding-window rate limits kept in the database, so that every process counts the same.

A limit is named by a *scope* (`login.ip`, `login.username`, `token.ip`, ...) whose
(count, seconds) come from `settings.RATE_LIMITS`, and applies to one *key* within it
(an address, a username). The key is stored only as a keyed digest: a username field
sometimes receives a patient's name typed by mistake, and that must not be kept.

No Redis: the embedded install has none, and the database is already shared by every
web process, which is what makes the count correct with more than one.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from careloop.core.clock import now
from careloop.security.audit import source_address
from careloop.security.auth.models import RateLimitHit

View = Callable[..., HttpResponse]


def _limit(scope: str) -> tuple[int, int]:
    count, seconds = settings.RATE_LIMITS[scope]
    return int(count), int(seconds)


def _bucket(scope: str, key: str) -> str:
    message = f"ratelimit\x00{scope}\x00{key}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def ratelimit_hit(*, scope: str, key: str) -> bool:
    """Count one request for `key` in `scope`; False when that makes it over the limit.

    The hit is written before counting, so two processes racing at the edge each see
    the other's hit and both refuse, instead of both letting one more through. Refused
    requests count too: whoever keeps hammering stays limited.
    """
    count, seconds = _limit(scope)
    at = now()
    bucket = _bucket(scope, key)
    with transaction.atomic():
        RateLimitHit.objects.create(bucket=bucket, at=at)
        seen = RateLimitHit.objects.filter(
            bucket=bucket, at__gt=at - datetime.timedelta(seconds=seconds)
        ).count()
    return seen <= count


def ratelimit_prune() -> int:
    """Forget hits older than the longest window (the sweep calls this)."""
    longest = max((seconds for _, seconds in settings.RATE_LIMITS.values()), default=0)
    cutoff = now() - datetime.timedelta(seconds=longest)
    deleted, _ = RateLimitHit.objects.filter(at__lte=cutoff).delete()
    return deleted


def client_address(request: HttpRequest) -> str:
    """The rate-limit key for "this caller": the audited source address."""
    return source_address(request) or "unknown"


def too_many_requests(request: HttpRequest, *, scope: str) -> HttpResponse:
    _, seconds = _limit(scope)
    response = render(
        request, "security/rate_limited.html", {"retry_minutes": max(1, seconds // 60)}, status=429
    )
    response["Retry-After"] = str(seconds)
    return response


def rate_limited(
    scope: str, *, key: Callable[[HttpRequest], str] = client_address, methods: str = "POST"
) -> Callable[[View], View]:
    """View decorator: answer 429 once `key(request)` is over the limit of `scope`.

    Only requests whose method is in `methods` count (by default POST: showing a form
    is free, submitting it is not).
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method in methods.split() and not ratelimit_hit(
                scope=scope, key=key(request)
            ):
                return too_many_requests(request, scope=scope)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
