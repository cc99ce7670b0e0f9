"""The staff shell: sign-in and sign-out, the home page, and static assets."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.views import serve as staticfiles_serve
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_safe

from careloop.core.forms import LoginForm
from careloop.core.practice import practice_today
from careloop.core.selectors import practice_headline
from careloop.core.web import staff_page
from careloop.security.access import HEADLINE_ROLES, STAFF_PAGE_ROLES, has_role

# An asset URL carrying its content hash (`{% asset %}`) never changes meaning.
FINGERPRINTED_MAX_AGE = 365 * 24 * 60 * 60
PLAIN_MAX_AGE = 60 * 60

login = auth_views.LoginView.as_view(
    template_name="careloop/login.html",
    authentication_form=LoginForm,
    redirect_authenticated_user=True,
)
logout = auth_views.LogoutView.as_view()


@require_safe
@staff_page(STAFF_PAGE_ROLES)
def home(request: HttpRequest) -> HttpResponse:
    headline = None
    if has_role(request.user, HEADLINE_ROLES):
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
