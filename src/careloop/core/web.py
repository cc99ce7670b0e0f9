"""The staff pages' door: sign-in, the permission check, the practice's clock, domain errors.

Every staff route declares what it does with `staff_page(op, resource)` (or, for the
shell's home page only, `staff_shell_page`); the declaration is checked against the
permission table (careloop.security.permissions) on every request and attached to the
view as `careloop_permission`, so the route matrix test can walk every route × role.

`staff_page` turns the domain's `NotFound` and `PermissionDenied` into the 404 and 403
pages, so selectors stay free of HTTP and views stay free of try/except.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from careloop.core.errors import NotFound, PermissionDenied
from careloop.core.practice import practice_zone
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import (
    ANY_STAFF,
    Declared,
    Op,
    Resource,
    is_staff_role,
    require,
)

View = Callable[..., HttpResponse]


def _door(
    view: View, declared: Declared, check: Callable[[HttpRequest, dict[str, Any]], None]
) -> View:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            check(request, kwargs)
            # Staff read times in the practice's zone, whatever the server's is.
            with timezone.override(practice_zone()):
                return view(request, *args, **kwargs)
        except NotFound:
            raise Http404 from None
        except PermissionDenied:
            raise HttpForbidden from None

    door = login_required(wrapper)
    door.careloop_permission = declared  # type: ignore[attr-defined]
    return door


def staff_page(op: Op, resource: Resource) -> Callable[[View], View]:
    """Sign-in required (else the login page), then `op` on `resource` allowed (else 403).

    A refusal is audited as `access.denied` by `require`.
    """

    def decorate(view: View) -> View:
        def check(request: HttpRequest, kwargs: dict[str, Any]) -> None:
            patient_id = kwargs.get("patient_id")
            if not isinstance(patient_id, uuid.UUID):
                patient_id = None
            require(request.user, op, resource, request=request, patient_id=patient_id)

        return _door(view, (op, resource), check)

    return decorate


def staff_shell_page(view: View) -> View:
    """For the home page only: any staff role may open it; it checks each part it shows."""

    def check(request: HttpRequest, kwargs: dict[str, Any]) -> None:
        user = request.user
        if not (isinstance(user, User) and user.is_active and is_staff_role(user.role)):
            # A patient account in the staff app: audited like any other refusal.
            audit_record(
                action="access.denied", request=request, resource_type="staff_app", outcome="denied"
            )
            raise PermissionDenied

    return _door(view, ANY_STAFF, check)


def is_htmx(request: HttpRequest) -> bool:
    """An htmx swap asks for a fragment; a history restore asks for the whole page."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )
