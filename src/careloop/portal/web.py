"""The portal's doors: the language a page speaks, and who may open a page.

`portal_public` pages (sign-in, registration) show no data and answer everyone.
`portal_page` pages need a signed-in patient with a portal account: a visitor is sent
to the portal's sign-in, a staff user is refused (staff see patients in the staff app,
under its own rules), and the view gets the account, from which every read starts
(careloop.portal.accounts.portal_patient): the own-record rule in one place. Both
mark the view `careloop_portal` for the route matrix test.

The portal speaks English and Spanish: `?lang=` (the switch in the page header, kept
in a cookie), else the signed-in patient's preferred language, else the browser's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import translation

from careloop.core.errors import NotFound, PermissionDenied
from careloop.portal.accounts import portal_account
from careloop.security.audit import audit_record

View = Callable[..., HttpResponse]
LANGUAGES = ("en", "es")
LANGUAGE_COOKIE = "careloop_portal_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 60 * 60


def portal_language(request: HttpRequest) -> str:
    for asked in (request.GET.get("lang", ""), request.COOKIES.get(LANGUAGE_COOKIE, "")):
        if asked in LANGUAGES:
            return asked
    account = portal_account(getattr(request, "user", None))
    if account is not None:
        preferred = account.patient.preferred_language.split("-")[0].lower()
        if preferred in LANGUAGES:
            return preferred
    browser = translation.get_language_from_request(request).split("-")[0]
    return browser if browser in LANGUAGES else LANGUAGES[0]


def _speaking(view: View) -> View:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        language = portal_language(request)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            response = view(request, *args, **kwargs)
        if request.GET.get("lang") == language:
            response.set_cookie(
                LANGUAGE_COOKIE,
                language,
                max_age=LANGUAGE_COOKIE_AGE,
                secure=True,
                httponly=True,
                samesite="Lax",
            )
        response.headers.setdefault("Content-Language", language)
        return response

    return wrapper


def portal_public(view: View) -> View:
    door = _speaking(view)
    door.careloop_portal = "public"  # type: ignore[attr-defined]
    return door


def portal_page(view: View) -> View:
    """A page of the signed-in patient's own record; the view is called as
    `view(request, account, ...)`."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return HttpResponseRedirect(reverse("portal:signin"))
        account = portal_account(request.user)
        if account is None:
            audit_record(
                action="access.denied", request=request, resource_type="portal", outcome="denied"
            )
            raise HttpForbidden
        try:
            return view(request, account, *args, **kwargs)
        except NotFound:
            raise Http404 from None
        except PermissionDenied:
            raise HttpForbidden from None

    door = _speaking(wrapper)
    door.careloop_portal = "patient"  # type: ignore[attr-defined]
    return door
