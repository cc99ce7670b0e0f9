"""Session policy: idle and absolute timeouts, and ending every session of a user at once.

Each session records when its user signed in, when they were last active and the
user's *session generation* at sign-in (careloop.security.auth.models.AccountState).
`SessionPolicyMiddleware` ends a session that has been idle longer than
`SESSION_IDLE_TIMEOUT`, is older than `SESSION_COOKIE_AGE`, or whose generation is
stale (the user was disabled, or all their sessions were ended).

Background requests do not count as activity: a page that polls must send
`X-Careloop-Background: 1` (with htmx: `hx-headers='{"X-Careloop-Background": "1"}'`
on the polling element), or a screen left open would never time out. Times come from
`careloop.core.clock` so that tests can move them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.signals import user_logged_in
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import urlencode

from careloop.core.clock import now
from careloop.security.audit import audit_record
from careloop.security.auth.models import AccountState

SIGNED_IN_AT = "careloop.signed_in_at"
LAST_ACTIVITY = "careloop.last_activity"
GENERATION = "careloop.generation"
BACKGROUND_HEADER = "X-Careloop-Background"
REMAINING_HEADER = "X-Careloop-Session-Remaining"
# The idle clock is written at most this often, so that a burst of requests (search as
# you type) costs one session write instead of one each.
ACTIVITY_RESOLUTION_SECONDS = 10


@dataclass(frozen=True)
class SessionTimes:
    idle_remaining: int
    absolute_remaining: int

    @property
    def remaining(self) -> int:
        """Seconds until this session ends unless the user does something."""
        return max(0, min(self.idle_remaining, self.absolute_remaining))


def session_generation(user_id: int) -> int:
    generation = (
        AccountState.objects.filter(user_id=user_id)
        .values_list("session_generation", flat=True)
        .first()
    )
    return generation or 0


def _session_started(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    at = now().timestamp()
    request.session[SIGNED_IN_AT] = at
    request.session[LAST_ACTIVITY] = at
    request.session[GENERATION] = session_generation(user.pk)


def connect_signals() -> None:
    user_logged_in.connect(_session_started, dispatch_uid="careloop.security.session_started")


def is_background(request: HttpRequest) -> bool:
    return request.headers.get(BACKGROUND_HEADER) == "1"


def session_times(request: HttpRequest) -> SessionTimes | None:
    """How long the signed-in session has left; None when nobody is signed in."""
    if not request.user.is_authenticated:
        return None
    session = request.session
    at = now().timestamp()
    last = float(session.get(LAST_ACTIVITY, 0))
    signed_in = float(session.get(SIGNED_IN_AT, 0))
    return SessionTimes(
        idle_remaining=int(last + settings.SESSION_IDLE_TIMEOUT - at),
        absolute_remaining=int(signed_in + settings.SESSION_COOKIE_AGE - at),
    )


def _end_reason(request: HttpRequest) -> str | None:
    session = request.session
    if GENERATION not in session or SIGNED_IN_AT not in session or LAST_ACTIVITY not in session:
        return "unknown session"
    if session[GENERATION] != session_generation(int(request.user.pk or 0)):
        return "sessions ended"
    times = session_times(request)
    assert times is not None  # noqa: S101 - the user is signed in
    if times.absolute_remaining <= 0:
        return "absolute timeout"
    if times.idle_remaining <= 0:
        return "idle timeout"
    return None


def _touch(request: HttpRequest) -> None:
    at = now().timestamp()
    resolution = min(ACTIVITY_RESOLUTION_SECONDS, settings.SESSION_IDLE_TIMEOUT // 30)
    if at - float(request.session[LAST_ACTIVITY]) >= resolution:
        request.session[LAST_ACTIVITY] = at


def _signed_out_response(request: HttpRequest) -> HttpResponse | None:
    """For an htmx swap, a redirect of the whole page to sign-in (not a login form
    swapped into a table); for anything else, None: the view decides as for anyone."""
    if request.headers.get("HX-Request") != "true" or is_background(request):
        return None
    response = HttpResponse(status=204)
    here = urlsplit(request.headers.get("HX-Current-URL", ""))
    target = reverse(settings.LOGIN_URL)
    if here.path:
        target += "?" + urlencode({"next": here.path})
    response["HX-Redirect"] = target
    return response


class SessionPolicyMiddleware:
    """Ends sessions that are idle, too old or revoked; refreshes the idle clock otherwise.

    Goes after AuthenticationMiddleware and MessageMiddleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The API authenticates by bearer token and ignores sessions: a browser cookie
        # riding along with an API call is neither activity nor a reason to refuse it.
        if not request.path.startswith(("/" + settings.STATIC_URL.lstrip("/"), "/api/")):
            ended = self._apply(request)
            if ended is not None:
                return ended
        response = self.get_response(request)
        times = session_times(request) if hasattr(request, "user") else None
        if times is not None:
            response[REMAINING_HEADER] = str(times.remaining)
        return response

    def _apply(self, request: HttpRequest) -> HttpResponse | None:
        if not request.user.is_authenticated:
            return None
        reason = _end_reason(request)
        if reason is None:
            if not is_background(request):
                _touch(request)
            return None
        if reason in {"idle timeout", "absolute timeout"}:
            audit_record(action="auth.session_expired", request=request, reason=reason)
            minutes = settings.SESSION_IDLE_TIMEOUT // 60
            message = (
                f"You were signed out after {minutes} minutes without activity."
                if reason == "idle timeout"
                else "You were signed out: sessions last at most "
                f"{settings.SESSION_COOKIE_AGE // 3600} hours."
            )
        else:
            message = "Your session has ended. Please sign in again."
        auth_logout(request)
        messages.info(request, message)
        return _signed_out_response(request)


def sessions_end_for_user(*, user_id: int) -> None:
    """End every session `user_id` has, in every process, at its next request.

    Call it inside the transaction of the change that requires it (disabling the user,
    resetting their second factor).
    """
    AccountState.objects.get_or_create(user_id=user_id)
    AccountState.objects.filter(user_id=user_id).update(
        session_generation=F("session_generation") + 1
    )


def session_context(request: HttpRequest) -> dict[str, Any]:
    """Template context for the idle warning (settings: a context processor)."""
    times = session_times(request)
    if times is None:
        return {}
    return {
        "session_remaining": times.remaining,
        "session_warn_seconds": settings.SESSION_IDLE_WARNING_SECONDS,
    }
