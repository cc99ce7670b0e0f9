"""Portal pages: sign-in (password or e-mailed link, then TOTP if the patient set it
up), self-registration, sign-out and the home page.

Every refusal on these pages reads the same whichever part was wrong, and the
registration answer is the same whether or not a record matched: whether someone is
a patient here is nobody's business but theirs and the practice's.
"""

from __future__ import annotations

import uuid
import zoneinfo

from django.apps import apps
from django.contrib.auth import logout as auth_logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.portal import accounts
from careloop.portal.forms import (
    CodeForm,
    LinkRequestForm,
    RegisterForm,
    RegisterVerifyForm,
    SignInForm,
)
from careloop.portal.models import PortalAccount
from careloop.portal.proxy import Power, proxy_grants
from careloop.portal.views_appointments import home_sections
from careloop.portal.web import portal_page, portal_public
from careloop.security.audit import audit_record
from careloop.security.auth import mfa
from careloop.security.auth.signin import Outcome, enrol_confirm
from careloop.security.models import User
from careloop.security.ratelimit import client_address, ratelimit_hit, too_many_requests

REGISTER_CHALLENGE = "careloop.portal.register_challenge"
FORM_METHODS = ["GET", "HEAD", "POST"]


def _no_match() -> str:
    return _("That e-mail or mobile number and password did not match. Please try again.")


def _locked() -> str:
    return _(
        "Too many failed attempts: this account is locked for 15 minutes. "
        "The front desk can help you sooner."
    )


def _bad_code() -> str:
    return _("That code did not work. Check the code and try again.")


def _signed_in(request: HttpRequest) -> bool:
    return accounts.portal_account(request.user) is not None


def _after_first_factor(request: HttpRequest, user: User) -> HttpResponse:
    if accounts.sign_in_first_factor(request=request, user=user):
        return HttpResponseRedirect(reverse("portal:home"))
    return HttpResponseRedirect(reverse("portal:signin_code"))


def _limited(request: HttpRequest, *, key: str) -> HttpResponse | None:
    """The staff sign-in's rate limits: per address and per typed identifier."""
    by_address = ratelimit_hit(scope="login.ip", key=client_address(request))
    by_name = ratelimit_hit(scope="login.username", key=key.strip().casefold())
    if by_address and by_name:
        return None
    return too_many_requests(request, scope="login.ip" if not by_address else "login.username")


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(FORM_METHODS)
@portal_public
def signin(request: HttpRequest) -> HttpResponse:
    if _signed_in(request):
        return HttpResponseRedirect(reverse("portal:home"))
    form = SignInForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST":
        refused = _limited(request, key=request.POST.get("contact", ""))
        if refused is not None:
            return refused
        error = _no_match()
        if form.is_valid():
            result = accounts.sign_in_password(
                request=request,
                contact=form.cleaned_data["contact"],
                password=form.cleaned_data["password"],
            )
            if result.outcome is Outcome.OK and result.user is not None:
                return _after_first_factor(request, result.user)
            if result.outcome is Outcome.LOCKED:
                error = _locked()
    return render(request, "portal/signin.html", {"form": form, "error": error})


@never_cache
@require_http_methods(FORM_METHODS)
@portal_public
def signin_code(request: HttpRequest) -> HttpResponse:
    user = accounts.pending_user(request)
    if user is None:
        return HttpResponseRedirect(reverse("portal:signin"))
    form = CodeForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST":
        outcome = (
            accounts.sign_in_totp(request=request, user=user, code=form.cleaned_data["code"])
            if form.is_valid()
            else Outcome.INVALID
        )
        if outcome is Outcome.OK:
            return HttpResponseRedirect(reverse("portal:home"))
        if outcome is Outcome.LOCKED:
            request.session.pop(accounts.PENDING_USER, None)
            context = {"form": SignInForm(), "error": _locked()}
            return render(request, "portal/signin.html", context, status=403)
        error = _("That code did not work. Codes change every 30 seconds and each works once.")
    return render(request, "portal/signin_code.html", {"form": form, "error": error})


@never_cache
@require_http_methods(FORM_METHODS)
@portal_public
def link_request(request: HttpRequest) -> HttpResponse:
    form = LinkRequestForm(request.POST if request.method == "POST" else None)
    sent = False
    if request.method == "POST":
        refused = _limited(request, key=request.POST.get("email", ""))
        if refused is not None:
            return refused
        if form.is_valid():
            accounts.signin_link_send(request=request, email=form.cleaned_data["email"])
            sent = True
    return render(request, "portal/link_request.html", {"form": form, "sent": sent})


@never_cache
@require_http_methods(FORM_METHODS)
@portal_public
def link_open(request: HttpRequest) -> HttpResponse:
    """GET shows a button; only its POST uses the link, so that a mail scanner that
    fetches every link in an e-mail does not use it up."""
    token = request.POST.get("t") or request.GET.get("t") or ""
    if request.method == "POST" and token:
        user = accounts.signin_link_use(request=request, token=token)
        if user is not None:
            return _after_first_factor(request, user)
    if request.method == "POST" or not token:
        return render(request, "portal/link_open.html", {"token": "", "dead": True})
    return render(request, "portal/link_open.html", {"token": token, "dead": False})


@sensitive_post_parameters("given_name", "family_name", "birth_date", "contact")
@never_cache
@require_http_methods(FORM_METHODS)
@portal_public
def register(request: HttpRequest) -> HttpResponse:
    form = RegisterForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if not ratelimit_hit(scope="portal.register.ip", key=client_address(request)):
            return too_many_requests(request, scope="portal.register.ip")
        challenge = accounts.register_start(
            request=request, identity=accounts.Identity(**form.cleaned_data)
        )
        # A match or not, the visitor goes on to the code page: the answer is the same.
        request.session[REGISTER_CHALLENGE] = str(challenge or "")
        return HttpResponseRedirect(reverse("portal:register_verify"))
    return render(request, "portal/register.html", {"form": form})


@sensitive_post_parameters("code", "password", "password_again")
@never_cache
@require_http_methods(FORM_METHODS)
@portal_public
def register_verify(request: HttpRequest) -> HttpResponse:
    if REGISTER_CHALLENGE not in request.session:
        return HttpResponseRedirect(reverse("portal:register"))
    form = RegisterVerifyForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            challenge_id: uuid.UUID | None = uuid.UUID(request.session[REGISTER_CHALLENGE])
        except ValueError:
            challenge_id = None
        user = accounts.register_complete(
            request=request,
            challenge_id=challenge_id,
            code=form.cleaned_data["code"],
            password=form.cleaned_data["password"],
        )
        if user is not None:
            request.session.pop(REGISTER_CHALLENGE, None)
            accounts.sign_in_complete(request=request, user=user)
            return HttpResponseRedirect(reverse("portal:home"))
        error = _bad_code()
    return render(request, "portal/register_verify.html", {"form": form, "error": error})


@require_POST
@portal_public
def signout(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        audit_record(action="auth.logout", request=request)
    auth_logout(request)
    return HttpResponseRedirect(reverse("portal:signin"))


def _visit_forms_ensure(account: PortalAccount) -> None:
    """The forms upcoming visits need are asked for before the To-do list is read:
    booking asks too, but not for a visit booked before its form became required."""
    if not apps.is_installed("careloop.intake"):
        return
    from careloop.intake.services import required_forms_ensure

    for grant in proxy_grants(account):
        if grant.allows(Power.VIEW):
            required_forms_ensure(patient=grant.patient)


@never_cache
@require_GET
@portal_page
def home(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    _visit_forms_ensure(account)
    # Appointments, reminders, tasks and the proxy's switcher: careloop.portal.views_appointments.
    sections = home_sections(request=request, account=account)
    # Times in the zone of the patient the page is about.
    with timezone.override(zoneinfo.ZoneInfo(sections["time_zone"])):
        return render(request, "portal/home.html", sections)


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def security(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    """Optional two-step sign-in: the staff enrolment (a django-otp TOTP device, a QR
    code drawn here), for a patient who wants it. Removing it takes the front desk."""
    user = account.user
    if mfa.mfa_device(user) is not None:
        return render(request, "portal/security.html", {"enrolled": True})
    form = CodeForm(request.POST if request.method == "POST" else None)
    error = ""
    if request.method == "POST":
        code = form.cleaned_data["code"] if form.is_valid() else ""
        outcome = enrol_confirm(request=request, user=user, code=code)
        if outcome is Outcome.OK:
            return render(request, "portal/security.html", {"enrolled": True})
        error = _bad_code()
    device = mfa.mfa_pending_device(user)
    context = {
        "enrolled": False,
        "form": form,
        "error": error,
        "qr_svg": mfa.qr_svg(mfa.totp_uri(device)),
        "secret": mfa.totp_secret(device),
    }
    return render(request, "portal/security.html", context)
