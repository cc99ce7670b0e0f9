"""The staff shell: the home page and static assets (sign-in is careloop.security.auth)."""

from __future__ import annotations

from django.contrib.staticfiles.views import serve as staticfiles_serve
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_safe

from careloop.core.practice import practice_today
from careloop.core.selectors import practice_headline
from careloop.core.web import staff_shell_page
from careloop.security.permissions import Op, Resource, actor_allowed

# An asset URL carrying its content hash (`{% asset %}`) never changes meaning.
FINGERPRINTED_MAX_AGE = 365 * 24 * 60 * 60
PLAIN_MAX_AGE = 60 * 60


@require_safe
@staff_shell_page
def home(request: HttpRequest) -> HttpResponse:
    """Every staff role lands here; the practice's figures only for those who read aggregates."""
    headline = None
    if actor_allowed(request.user, Op.READ, Resource.AGGREGATES):
        headline = practice_headline(actor=request.user, today=practice_today())
    return render(request, "careloop/home.html", {"headline": headline})


@require_safe
def static_asset(request: HttpRequest, path: str) -> HttpResponseBase:
    """Static files served by careloop itself, with DEBUG off too (no CDN, no extra server).

    Files come from the apps' `static/` folders through the staticfiles finders, so
    nothing needs collecting first; `Last-Modified` lets browsers revalidate cheaply.
    """
    response = staticfiles_serve(request, path, insecure=True)
    if "v" in request.GET:
        response["Cache-Control"] = f"public, max-age={FINGERPRINTED_MAX_AGE}, immutable"
    else:
        response["Cache-Control"] = f"public, max-age={PLAIN_MAX_AGE}"
    return response
