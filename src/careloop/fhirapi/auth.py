"""Who is calling the FHIR API, what they may do, and how errors become OperationOutcomes.

Only `Authorization: Bearer <token>` from the token endpoint authenticates (a session
cookie sent along is ignored). Every interaction is checked twice: the token's SMART
scopes (careloop.fhirapi.scopes) and the client's role in the one permission table
(`require_integration`); either refusal is a 403 OperationOutcome and an
`access.denied` audit event. Every access is audited with the client as the actor.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from careloop.core.errors import NotFound, PermissionDenied
from careloop.fhirapi.models import AccessToken, Client
from careloop.fhirapi.oauth import token_authenticate
from careloop.fhirapi.outcome import FhirError, error_response, not_found
from careloop.fhirapi.registry import Provider, Readable
from careloop.fhirapi.scopes import permits
from careloop.security.audit import audit_record
from careloop.security.models import AuditEvent
from careloop.security.permissions import Op, Resource, allowed, require_integration

# A route's declaration for the route matrix: the permission it needs, or "owner" for
# an export's status and files, which answer only the client that started the export.
OWNER: Final = "owner"
Declared = tuple[Op, Resource] | Literal["owner"]
_JSON_FORMATS: Final = frozenset({"json", "application/json", "application/fhir+json"})


@dataclass(frozen=True)
class Caller:
    """An authenticated client, its token's scopes, and the request it made."""

    client: Client
    scopes: list[str]
    request: HttpRequest

    @property
    def readable(self) -> Readable:
        role = self.client.role
        return frozenset(r for r in Resource if allowed(role, Op.READ, r))

    def require(
        self, provider: Provider, interaction: str, *, patient_id: uuid.UUID | None = None
    ) -> None:
        """Scope and permission table both allow `interaction` on the provider's type."""
        self.require_type(provider.type, provider.resource, interaction, patient_id=patient_id)

    def require_type(
        self,
        resource_type: str,
        resource: Resource,
        interaction: str,
        *,
        patient_id: uuid.UUID | None = None,
    ) -> None:
        """`require` for a type served outside the registry (Measure and its operations)."""
        if not permits(self.scopes, resource_type, interaction):
            self.audit(
                "access.denied",
                resource_type=str(resource),
                outcome="denied",
                fields=(f"scope:{resource_type}.{interaction}",),
                patient_id=patient_id,
            )
            raise FhirError(403, "forbidden", f"the token's scopes do not cover {resource_type}")
        try:
            require_integration(
                role=self.client.role,
                client_id=self.client.client_id,
                op=Op.READ,
                resource=resource,
                request=self.request,
                patient_id=patient_id,
            )
        except PermissionDenied:
            raise FhirError(403, "forbidden", f"this client may not read {resource_type}") from None

    def audit(
        self,
        action: str,
        *,
        resource_type: str = "",
        resource_id: str = "",
        patient_id: uuid.UUID | None = None,
        fields: Sequence[str] = (),
        outcome: str = "success",
    ) -> None:
        audit_record(
            action=action,
            request=self.request,
            actor=AnonymousUser(),
            actor_kind=AuditEvent.ActorKind.INTEGRATION,
            actor_id=self.client.client_id,
            patient_id=patient_id,
            resource_type=resource_type,
            resource_id=resource_id,
            fields=fields,
            outcome=outcome,
        )


def check_format(request: HttpRequest) -> None:
    """JSON only: `_format` or an Accept header that rules JSON out is 406."""
    wanted = request.GET.get("_format", "").strip().lower()
    if wanted and wanted not in _JSON_FORMATS:
        raise FhirError(406, "not-supported", "careloop's FHIR API speaks JSON only")
    accept = request.headers.get("Accept", "").lower()
    if accept and not any(part in accept for part in ("json", "*/*", "application/*")):
        raise FhirError(406, "not-supported", "careloop's FHIR API speaks JSON only")


def authenticate(request: HttpRequest) -> Caller:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    token: AccessToken | None = None
    if scheme.lower() == "bearer":
        token = token_authenticate(raw=raw.strip())
    if token is None:
        audit_record(
            action="token.denied",
            request=request,
            actor=AnonymousUser(),
            resource_type="fhir_access_token",
            outcome="denied",
        )
        raise FhirError(
            401,
            "login",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="careloop-fhir"'},
        )
    return Caller(client=token.client, scopes=list(token.scopes), request=request)


View = Callable[..., HttpResponseBase]


def fhir_endpoint(
    *, methods: Sequence[str] = ("GET",), declared: Declared | None = None
) -> Callable[[View], View]:
    """Method check, format check, bearer authentication, errors as OperationOutcome.

    With `declared=None` the endpoint is public (metadata, discovery, the token
    endpoint) and gets no `Caller`. The method is checked first, so a wrong method is
    405 for every caller alike.
    """

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise FhirError(
                        405,
                        "not-supported",
                        f"use {' or '.join(methods)} here",
                        headers={"Allow": ", ".join(methods)},
                    )
                check_format(request)
                if declared is None:
                    return view(request, *args, **kwargs)
                return view(authenticate(request), *args, **kwargs)
            except FhirError as error:
                return error_response(error)
            except NotFound:
                return error_response(not_found())

        if declared is None:
            wrapper.careloop_api_public = True  # type: ignore[attr-defined]
        else:
            wrapper.careloop_fhir_permission = declared  # type: ignore[attr-defined]
        return wrapper

    return decorate
