"""The real URLs plus one sensitive test view guarded by `reauth_required`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from careloop.core.web import staff_page
from careloop.security.auth.gate import reauth_required
from careloop.security.permissions import Op, Resource
from careloop.urls import urlpatterns as real


@staff_page(Op.WRITE, Resource.USERS)
@reauth_required
def sensitive(request: HttpRequest) -> HttpResponse:
    return HttpResponse("exported")


urlpatterns = [*real, path("test-sensitive/", sensitive, name="test_sensitive")]
