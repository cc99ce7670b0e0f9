"""Sign-in (password, then TOTP or enrolment), sign-out, re-authentication, session status.

Every failure message is the same whichever part was wrong: whether a username
exists is nobody's business but the administrator's.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from careloop.security.audit import audit_record
from careloop.security.auth import mfa
from careloop.security.auth.forms import CodeForm, PasswordForm, ReauthForm
from careloop.security.auth.gate import is_verified, second_step_url
from careloop.security.auth.signin import (
    Outcome,
    enrol_confirm,
    reauthenticate,
    sign_in_code,
    sign_in_password,
)
from careloop.security.models import User
from careloop.security.ratelimit import client_address, ratelimit_hit, too_many_requests
from careloop.security.sessions import session_times

NO_MATCH = "That username and password did not match. Please try again."
BAD_CODE = "That code did not work. Codes change every 30 seconds and each works once."
LOCKED = (
    "Too many failed attempts: this account is locked for "
    f"{settings.LOCKOUT_SECONDS // 60} minutes. An administrator can unlock it sooner."
)


def _next_url(request: HttpRequest) -> str:
    """The safe `next` of this request, or the home page."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _signed_in_user(request: HttpRequest) -> User | None:
    user = request.user
    return user if isinstance(user, User) and user.is_authenticated else None


def _locked_out(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    form = PasswordForm()
    return render(request, "security/login.html", {"form": form, "error": LOCKED}, status=403)


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    if user is not None:
        if is_verified(request):
            return HttpResponseRedirect(_next_url(request))
        return HttpResponseRedirect(second_step_url(request, next_url=_next_url(request)))
    form = PasswordForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST":
        typed = request.POST.get("username", "").strip().casefold()
        # Both windows count this attempt, whichever refuses it.
        by_address = ratelimit_hit(scope="login.ip", key=client_address(request))
        by_name = ratelimit_hit(scope="login.username", key=typed)
        if not (by_address and by_name):
            scope = "login.ip" if not by_address else "login.username"
            return too_many_requests(request, scope=scope)
        if form.is_valid():
            result = sign_in_password(
                request=request,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
            )
            if result.outcome is Outcome.OK and result.user is not None:
                auth_login(request, result.user)
                return HttpResponseRedirect(second_step_url(request, next_url=_next_url(request)))
            error = LOCKED if result.outcome is Outcome.LOCKED else NO_MATCH
        else:
            error = NO_MATCH
    return render(
        request,
        "security/login.html",
        {"form": form, "error": error, "next": _next_url(request)},
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def mfa_verify(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    if user is None:
        return HttpResponseRedirect(reverse("login"))
    if is_verified(request):
        return HttpResponseRedirect(_next_url(request))
    if mfa.mfa_device(user) is None:
        return HttpResponseRedirect(second_step_url(request, next_url=_next_url(request)))
    form = CodeForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST":
        outcome = (
            sign_in_code(request=request, user=user, code=form.cleaned_data["code"])
            if form.is_valid()
            else Outcome.INVALID
        )
        if outcome is Outcome.OK:
            return HttpResponseRedirect(_next_url(request))
        if outcome is Outcome.LOCKED:
            return _locked_out(request)
        error = BAD_CODE
    return render(
        request,
        "security/mfa_verify.html",
        {"form": form, "error": error, "next": _next_url(request)},
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def mfa_enrol(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    if user is None:
        return HttpResponseRedirect(reverse("login"))
    if mfa.mfa_device(user) is not None:
        # Enrolled already: replacing a device takes an administrator (`careloop user
        # reset-mfa`), never just a password.
        return HttpResponseRedirect(second_step_url(request, next_url=_next_url(request)))
    form = CodeForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST":
        outcome = (
            enrol_confirm(request=request, user=user, code=form.cleaned_data["code"])
            if form.is_valid()
            else Outcome.INVALID
        )
        if outcome is Outcome.OK:
            return HttpResponseRedirect(_next_url(request))
        if outcome is Outcome.LOCKED:
            return _locked_out(request)
        error = BAD_CODE
    device = mfa.mfa_pending_device(user)
    uri = mfa.totp_uri(device)
    return render(
        request,
        "security/mfa_enrol.html",
        {
            "form": form,
            "error": error,
            "next": _next_url(request),
            "qr_svg": mfa.qr_svg(uri),
            "secret": mfa.totp_secret(device),
            "issuer": settings.OTP_TOTP_ISSUER,
        },
    )


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def reauth(request: HttpRequest) -> HttpResponse:
    user = _signed_in_user(request)
    if user is None:
        return HttpResponseRedirect(reverse("login"))
    form = ReauthForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST":
        outcome = (
            reauthenticate(
                request=request,
                user=user,
                password=form.cleaned_data["password"],
                code=form.cleaned_data["code"],
            )
            if form.is_valid()
            else Outcome.INVALID
        )
        if outcome is Outcome.OK:
            return HttpResponseRedirect(_next_url(request))
        if outcome is Outcome.LOCKED:
            return _locked_out(request)
        error = "That password and code did not match. Please try again."
    return render(
        request, "security/reauth.html", {"form": form, "error": error, "next": _next_url(request)}
    )


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        audit_record(action="auth.logout", request=request)
    auth_logout(request)
    return HttpResponseRedirect(resolve_url(settings.LOGOUT_REDIRECT_URL))


@never_cache
@require_http_methods(["GET", "POST"])
def session_status(request: HttpRequest) -> JsonResponse:
    """How long the session has left. A GET sent with `X-Careloop-Background: 1` only
    asks; the POST of "Stay signed in" is activity (careloop.security.sessions)."""
    times = session_times(request)
    if times is None:
        return JsonResponse({"signed_in": False, "remaining": 0})
    return JsonResponse(
        {
            "signed_in": True,
            "remaining": times.remaining,
            "idle_remaining": times.idle_remaining,
            "absolute_remaining": times.absolute_remaining,
        }
    )
