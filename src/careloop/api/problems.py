"""Every API error is an RFC 9457 problem document (`application/problem+json`).

Never an HTML page, never a 500 for bad input: malformed JSON is 400, a body or
parameter of the wrong shape 422 (with the location of each error, never the value
sent, which may be PHI), a missing or refused token 401, a forbidden operation 403, a
record that is missing or not the caller's to see 404, a wrong method 405, too many
requests 429. `problem_boundary` wraps each API URL so that even the responses
django-ninja makes outside its exception handlers (405, the bare root) follow the rule.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import orjson
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from careloop.core.errors import NotFound, PermissionDenied

PROBLEM_JSON: Final = "application/problem+json"
logger = logging.getLogger(__name__)

# Headers of an error response that mean something to the client and must survive.
_KEPT_HEADERS: Final = ("Allow", "Retry-After", "WWW-Authenticate")

_DETAILS: Final = {
    400: "The request body is not valid JSON.",
    401: "A valid API token is required: send `Authorization: Bearer <token>`.",
    403: "Your role may not perform this operation.",
    404: "There is no such resource, or it is not yours to see.",
    405: "This method is not allowed on this resource.",
    409: "The request conflicts with the current state of the resource.",
    412: "The resource changed since you read it; GET it again and retry.",
    422: "The request does not have the expected shape; see `errors`.",
    428: "This update needs `If-Match` with the ETag from a GET.",
    429: "Too many requests; wait before trying again.",
    500: "The server could not complete the request. It has been logged.",
}


def problem(status: int, detail: str | None = None, **extensions: Any) -> HttpResponse:
    """A problem document for `status`, with the standard title and a careloop detail."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or _DETAILS.get(status, HTTPStatus(status).description),
        **extensions,
    }
    return HttpResponse(orjson.dumps(body), status=status, content_type=PROBLEM_JSON)


class ProblemError(HttpError):
    """An error with our own detail (never PHI) and optional problem extensions."""

    def __init__(self, status: int, detail: str, **extensions: Any) -> None:
        super().__init__(status, detail)
        self.detail = detail
        self.extensions = extensions


class TooManyRequests(HttpError):
    """Raised by the rate limit; the client should wait `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "Too many requests")
        self.retry_after = retry_after


def _validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    # Pydantic's messages describe the expectation ("Input should be a valid integer");
    # the sent value (`input`) and its context are dropped on purpose.
    # django-ninja puts the body parameter's name after "body"; the client never sees it.
    def location(loc: tuple[Any, ...]) -> str:
        parts = [loc[0], *loc[2:]] if len(loc) > 1 and loc[0] == "body" else list(loc)
        return ".".join(str(part) for part in parts)

    return [
        {
            "location": location(tuple(error.get("loc", ()))),
            "message": str(error.get("msg", "invalid")),
            "type": str(error.get("type", "invalid")),
        }
        for error in errors
    ]


def problem_for(request: HttpRequest, exc: Any) -> HttpResponse:
    """The problem document for an exception raised while serving an API request."""
    if isinstance(exc, ValidationError):
        return problem(422, errors=_validation_errors(exc.errors))
    if isinstance(exc, AuthenticationError):
        response = problem(401)
        response["WWW-Authenticate"] = 'Bearer realm="careloop"'
        return response
    if isinstance(exc, TooManyRequests):
        response = problem(429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, ProblemError):
        return problem(exc.status_code, exc.detail, **exc.extensions)
    if isinstance(exc, HttpError):
        # Our own messages, and django-ninja's ("Cannot parse request body"), carry no PHI.
        known = exc.status_code in _DETAILS and exc.status_code != 500
        return problem(exc.status_code, None if known else str(exc))
    if isinstance(exc, Http404 | NotFound):
        return problem(404)
    if isinstance(exc, PermissionDenied):
        return problem(403)
    # Logged with its traceback like any server error; the client learns nothing more.
    logger.error("API error in %s %s", request.method, request.path, exc_info=exc)
    return problem(500)


def install_handlers(api: NinjaAPI) -> None:
    """Replace django-ninja's `{"detail": ...}` errors with problem documents."""
    for exception in (ValidationError, HttpError, Http404, NotFound, PermissionDenied, Exception):
        api.add_exception_handler(exception, problem_for)


View = Callable[..., HttpResponseBase]


def problem_boundary(view: View) -> View:
    """Turn any non-problem error response (or an escaped Http404) into a problem document."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            return problem(404)
        if response.status_code < 400 or response.get("Content-Type", "").startswith(PROBLEM_JSON):
            return response
        replacement = problem(response.status_code)
        for header in _KEPT_HEADERS:
            if header in response:
                replacement[header] = response[header]
        return replacement

    return wrapper


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any path under /api/ that names no endpoint."""
    return problem(404)
