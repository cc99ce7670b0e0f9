"""The staff pages' door: sign-in, the role check, the practice's clock, domain errors.

`staff_page` turns the domain's `NotFound` and `PermissionDenied` into the 404 and 403
pages, so selectors stay free of HTTP and views stay free of try/except.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from careloop.core.errors import NotFound, PermissionDenied
from careloop.core.practice import practice_zone
from careloop.security.access import require_role

View = Callable[..., HttpResponse]


def staff_page(allowed_roles: Collection[str]) -> Callable[[View], View]:
    """Sign-in required (else the login page), then a role in `allowed_roles` (else 403)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                require_role(request.user, allowed_roles)
                # Staff read times in the practice's zone, whatever the server's is.
                with timezone.override(practice_zone()):
                    return view(request, *args, **kwargs)
            except NotFound:
                raise Http404 from None
            except PermissionDenied:
                raise HttpForbidden from None

        return login_required(wrapper)

    return decorate


def is_htmx(request: HttpRequest) -> bool:
    """An htmx swap asks for a fragment; a history restore asks for the whole page."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )
