"""/api/: version 1's endpoints, each behind `problem_boundary`, and a problem-404 for the rest.

Each route carries `careloop_api_permission` (what it declared, careloop.api.auth) or
`careloop_api_public` (it answers 404 to everyone), for the route matrix test.
"""

from __future__ import annotations

from django.urls import URLPattern, include, path, re_path

from careloop.api.auth import ANY_STAFF, DECLARED
from careloop.api.main import api
from careloop.api.problems import not_found, problem_boundary

app_name = "api"


def _v1() -> list[URLPattern]:
    patterns, _, _ = api.urls
    routes: list[URLPattern] = []
    for pattern in patterns:
        assert isinstance(pattern, URLPattern)  # noqa: S101 - django-ninja makes only paths
        callback = problem_boundary(pattern.callback)
        if pattern.name == "openapi-json":
            callback.careloop_api_permission = ANY_STAFF  # type: ignore[attr-defined]
        elif pattern.name in DECLARED:
            callback.careloop_api_permission = DECLARED[pattern.name]  # type: ignore[attr-defined]
        else:
            callback.careloop_api_public = True  # type: ignore[attr-defined]
        routes.append(URLPattern(pattern.pattern, callback, pattern.default_args, pattern.name))
    return routes


not_found.careloop_api_public = True  # type: ignore[attr-defined]

urlpatterns = [
    path("v1/", include(_v1())),
    re_path(r"^", not_found, name="not-found"),
]
