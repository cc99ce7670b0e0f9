"""The API object: version 1, its routers, its error handling and its OpenAPI document."""

from __future__ import annotations

import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.openapi.schema import OpenAPISchema
from ninja.operation import Operation

from careloop.api import consents, contacts, me, notes, patients
from careloop.api.auth import BearerToken
from careloop.api.problems import PROBLEM_JSON, install_handlers, problem
from careloop.api.schemas import Problem

# Every operation may answer these; the document says so once per operation.
ERROR_STATUSES: Final = (400, 401, 403, 404, 422, 429)
# And these, for the operations that can answer them.
CONCURRENCY_STATUSES: Final = {"PATCH": (412, 428), "PUT": (412, 428), "DELETE": (412,)}

DESCRIPTION: Final = """\
careloop's JSON API for staff tools and integrations.

Authenticate with a personal API token: `Authorization: Bearer clp_...` (issued by
`careloop token create --user NAME`; it expires, and can be revoked). Sessions cookies
are ignored. Every error is an RFC 9457 problem document (`application/problem+json`).
Searches are POSTed so that what is searched for never appears in a URL. Every read of
a patient is recorded in the audit log.
"""


class CareloopAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        # The endpoint's name (also its URL name), not django-ninja's module-path default.
        return operation.view_func.__name__

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        reference = {"$ref": "#/components/schemas/Problem"}
        for path_item in schema["paths"].values():
            for method, operation in path_item.items():
                responses = operation.setdefault("responses", {})
                extra = CONCURRENCY_STATUSES.get(method.upper(), ())
                if operation.get("operationId") == "patient_create":
                    extra = (409,)
                for status in (*ERROR_STATUSES, *extra):
                    responses.setdefault(
                        status,
                        {
                            "description": HTTPStatus(status).phrase,
                            "content": {PROBLEM_JSON: {"schema": reference}},
                        },
                    )
        return schema


def token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For the OpenAPI document: any valid staff token (it shows no data, but it is a
    map of what a token could reach, and only token holders need it)."""
    bearer = BearerToken()

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            user = bearer(request)
        except HttpError as error:
            return api.on_exception(request, error)
        if user is None:
            return api.on_exception(request, AuthenticationError())
        return view(request, *args, **kwargs)

    return wrapper


api = CareloopAPI(
    title="careloop API",
    version="1",
    description=DESCRIPTION,
    auth=BearerToken(),
    urls_namespace="api",
    openapi_url="/openapi.json",
    # No Swagger UI: it needs inline script and assets from a CDN, which the CSP forbids.
    docs_url=None,
    docs_decorator=token_required,
)
install_handlers(api)
api.add_router("", me.router)
api.add_router("", patients.router)
api.add_router("", contacts.router)
api.add_router("", notes.router)
api.add_router("", consents.router)

__all__ = ["api", "problem"]
