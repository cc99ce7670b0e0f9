"""/api/: version 1's endpoints, each behind `problem_boundary`, and a problem-404 for the rest.

Each route carries `careloop_api_permission` (what it declared, careloop.api.auth) or
`careloop_api_public` (it answers 404 to everyone), for the route matrix test. Several
endpoints may share one path (`GET` lists, `POST` adds): django-ninja then makes one
URL pattern per endpoint, all dispatching on the method to the same view, so each
pattern also carries `careloop_api_methods`, the declaration of each method served
there, and the matrix checks every method against its own.
"""

from __future__ import annotations

from django.urls import URLPattern, include, path, re_path

from careloop.api.auth import ANY_STAFF, DECLARED, Declared
from careloop.api.main import api
from careloop.api.problems import not_found, problem_boundary

app_name = "api"


def _method_of_endpoint() -> dict[str, str]:
    """Endpoint name → its HTTP method, from the OpenAPI document (whose operation ids
    are the endpoint names, careloop.api.main)."""
    paths = api.get_openapi_schema(path_prefix="")["paths"]
    return {
        operation["operationId"]: method.upper()
        for item in paths.values()
        for method, operation in item.items()
    }


def _v1() -> list[URLPattern]:
    patterns, _, _ = api.urls
    method_of = _method_of_endpoint()
    by_route: dict[str, dict[str, Declared]] = {}
    for pattern in patterns:
        assert isinstance(pattern, URLPattern)  # noqa: S101 - django-ninja makes only paths
        if pattern.name and pattern.name in DECLARED and pattern.name in method_of:
            methods = by_route.setdefault(str(pattern.pattern), {})
            methods[method_of[pattern.name]] = DECLARED[pattern.name]
    routes: list[URLPattern] = []
    for pattern in patterns:
        assert isinstance(pattern, URLPattern)  # noqa: S101 - django-ninja makes only paths
        callback = problem_boundary(pattern.callback)
        methods = by_route.get(str(pattern.pattern), {})
        callback.careloop_api_methods = methods  # type: ignore[attr-defined]
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
