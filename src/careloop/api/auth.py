"""Who is calling and what they may do: bearer tokens, the rate limit, declared permissions.

Only `Authorization: Bearer <token>` authenticates. A session cookie sent along is
ignored, so a page on another site cannot make a signed-in browser call the API (the
reason the API needs no CSRF token). Each request first counts against the caller's
address (`token.ip` in settings.RATE_LIMITS), before the token is even looked at.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, Literal

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from careloop.api.problems import TooManyRequests
from careloop.core.errors import PermissionDenied
from careloop.security.models import User
from careloop.security.permissions import Op, Resource, is_staff_role, require
from careloop.security.ratelimit import client_address, ratelimit_hit
from careloop.security.tokens import token_authenticate

RATE_SCOPE: Final = "token.ip"
# The declaration of an endpoint any staff token may call (it shows no patient data).
ANY_STAFF: Final = "any_staff"
Declared = tuple[Op, Resource] | Literal["any_staff"]


class BearerToken(HttpBearer):
    """`Authorization: Bearer clp_...` → the token's user (careloop.security.tokens)."""

    def __call__(self, request: HttpRequest) -> User | None:
        # Replaces HttpBearer.__call__, which logs the whole header in DEBUG.
        if not ratelimit_hit(scope=RATE_SCOPE, key=client_address(request)):
            _, window = settings.RATE_LIMITS[RATE_SCOPE]
            raise TooManyRequests(retry_after=int(window))
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            return None
        return self.authenticate(request, raw.strip())

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        user = token_authenticate(raw=token, request=request)
        if user is None:
            return None
        # The audit log and `require` read the actor from the request, as on staff pages.
        request.user = user
        return user


def api_user(request: HttpRequest) -> User:
    """The authenticated caller (every endpoint runs behind `BearerToken`)."""
    user = request.auth  # type: ignore[attr-defined]
    if not isinstance(user, User):  # pragma: no cover - django-ninja ran no auth
        raise AuthenticationError
    return user


Endpoint = Callable[..., Any]
# Endpoint (URL) name → its declaration, for careloop.api.urls to put on each route.
DECLARED: dict[str, Declared] = {}


def endpoint_permission(declared: Declared) -> Callable[[Endpoint], Endpoint]:
    """Declare and enforce what an endpoint does, as `staff_page` does for pages.

    `(op, resource)` goes through the permission table (`require`, which audits a
    refusal as `access.denied`); `ANY_STAFF` admits any staff role. The declaration is
    kept on the function as `careloop_permission` for the route matrix test.
    """

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            user = api_user(request)
            if declared == ANY_STAFF:
                if not (user.is_active and is_staff_role(user.role)):
                    raise PermissionDenied
            else:
                op, resource = declared
                require(user, op, resource, request=request)
            return endpoint(request, *args, **kwargs)

        wrapper.careloop_permission = declared  # type: ignore[attr-defined]
        DECLARED[endpoint.__name__] = declared
        return wrapper

    return decorate
