"""The MFA gate and re-authentication: what a signed-in session may reach, and when.

`MfaGateMiddleware` lets a staff session that has passed the password but not the
second factor reach only the sign-in steps (and sign-out, static files, health
checks); every other request goes to the second step. It is a middleware rather
than a check inside `staff_page` so that a route which forgets its decorator is
still closed to a half-signed-in session. `require_verified` is the same check for
code that wants it explicitly.

`reauth_required` guards sensitive actions (exports, role changes, key rotation):
the user must have typed their password and a fresh code within `max_age` seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, overload

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from careloop.core.clock import now
from careloop.security.auth import mfa
from careloop.security.auth.signin import REAUTH_AT
from careloop.security.models import Role

View = Callable[..., HttpResponse]

# URL names a signed-in but unverified session may use.
OPEN_TO_UNVERIFIED = frozenset(
    {"login", "logout", "mfa_verify", "mfa_enrol", "session_status", "healthz", "readyz", "static"}
)


def is_verified(request: HttpRequest) -> bool:
    """Signed in with both factors (or not a staff account, which this gate is not for)."""
    user = request.user
    if not user.is_authenticated:
        return False
    if getattr(user, "role", None) == Role.PATIENT:
        return True
    # `is_verified` is put on the user by django-otp's OTPMiddleware.
    return bool(getattr(user, "is_verified", lambda: False)())


def second_step_url(request: HttpRequest, *, next_url: str = "") -> str:
    """Where a signed-in, unverified user goes next: enrolment or the code prompt."""
    name = "mfa_verify" if mfa.mfa_device(request.user) is not None else "mfa_enrol"  # type: ignore[arg-type]
    url = reverse(name)
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    if request.headers.get("HX-Request") == "true":
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)


def require_verified(request: HttpRequest) -> HttpResponse | None:
    """None when the request may go on; otherwise the response that sends it to sign-in."""
    if not request.user.is_authenticated or is_verified(request):
        return None
    next_url = request.get_full_path() if request.method in {"GET", "HEAD"} else ""
    return _redirect(request, second_step_url(request, next_url=next_url))


class MfaGateMiddleware:
    """Goes after django-otp's OTPMiddleware (which tells whether the session is verified)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: View, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is not None and match.url_name in OPEN_TO_UNVERIFIED:
            return None
        if request.path.startswith("/api/"):
            # Bearer tokens only; the session (verified or not) plays no part there.
            return None
        return require_verified(request)


def reauth_fresh(request: HttpRequest, *, max_age: int) -> bool:
    at = request.session.get(REAUTH_AT)
    return at is not None and now().timestamp() - float(at) <= max_age


def _return_to(request: HttpRequest) -> str:
    """Where to come back after re-authenticating: this page for a GET; for a form post,
    the page the form was on (the post itself cannot be replayed through a redirect)."""
    if request.method in {"GET", "HEAD"}:
        return request.get_full_path()
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return reverse(settings.LOGIN_REDIRECT_URL)


@overload
def reauth_required(view: View, *, max_age: int | None = None) -> View: ...


@overload
def reauth_required(view: None = None, *, max_age: int | None = None) -> Callable[[View], View]: ...


def reauth_required(
    view: View | None = None, *, max_age: int | None = None
) -> View | Callable[[View], View]:
    """View decorator: the password and a fresh code again if the last re-authentication
    is older than `max_age` seconds (default `settings.REAUTH_MAX_AGE_SECONDS`).

    Use as `@reauth_required` or `@reauth_required(max_age=60)`, inside `staff_page`
    (so the permission check comes first).
    """

    def decorate(inner: View) -> View:
        @functools.wraps(inner)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            limit = settings.REAUTH_MAX_AGE_SECONDS if max_age is None else max_age
            if request.user.is_authenticated and not reauth_fresh(request, max_age=limit):
                url = f"{reverse('reauth')}?{urlencode({'next': _return_to(request)})}"
                return _redirect(request, url)
            return inner(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
