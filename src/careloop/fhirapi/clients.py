"""Registering FHIR API clients: add, list, disable. Each change is audited `fhir.client`."""

from __future__ import annotations

import secrets
from typing import Any

import jwt
from django.db import transaction

from careloop.core import clock
from careloop.core.errors import NotFound
from careloop.fhirapi.models import AccessToken, Client
from careloop.fhirapi.scopes import parse_scope
from careloop.security.audit import audit_record
from careloop.security.models import AuditEvent
from careloop.security.permissions import SCOPED_ROLES, is_staff_role


class ClientError(ValueError):
    """A client cannot be registered as asked; the message says what to change."""


def _check(*, name: str, jwks: Any, scopes: list[str], role: str) -> None:
    if not name.strip() or len(name) > 100:
        raise ClientError("a client's name is 1 to 100 characters")
    if not is_staff_role(role) or role in SCOPED_ROLES:
        raise ClientError(
            f"role {role!r} cannot act for a client: choose a staff role whose access is "
            "not limited to a care team (see docs/permissions.md)"
        )
    bad = [scope for scope in scopes if parse_scope(scope) is None]
    if not scopes or bad:
        raise ClientError("scopes must be read scopes like system/Patient.read or system/*.read")
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except (jwt.PyJWKError, jwt.PyJWKSetError, AttributeError, TypeError):
        raise ClientError(
            "the JWKS must be a JSON object with a `keys` list of public keys"
        ) from None
    if any(
        key.algorithm_name not in ("RS384", "ES384") and key.key_type not in ("RSA", "EC")
        for key in keys
    ):
        raise ClientError("keys must be RSA or EC keys for RS384 or ES384")
    if any("d" in raw for raw in jwks.get("keys", [])):
        raise ClientError("the JWKS holds a private key: register the public keys only")


def _audit(client: Client, what: str) -> None:
    audit_record(
        action="fhir.client",
        actor_kind=AuditEvent.ActorKind.SYSTEM,
        actor_id="console",
        resource_type="fhir_client",
        resource_id=client.client_id,
        fields=(what,),
    )


@transaction.atomic
def client_add(*, name: str, jwks: Any, scopes: list[str], role: str) -> Client:
    _check(name=name, jwks=jwks, scopes=scopes, role=role)
    if Client.objects.filter(name=name).exists():
        raise ClientError(f"a client named {name!r} exists already")
    client = Client.objects.create(
        name=name,
        client_id=secrets.token_urlsafe(24),
        jwks={"keys": list(jwks["keys"])},
        scopes=scopes,
        role=role,
        created_at=clock.now(),
    )
    _audit(client, "add")
    return client


def client_list() -> list[Client]:
    return list(Client.objects.all())


@transaction.atomic
def client_disable(*, name: str) -> Client:
    """Disable a client and revoke its live tokens at once."""
    client = Client.objects.select_for_update().filter(name=name).first()
    if client is None:
        raise NotFound
    if client.active:
        client.active = False
        client.disabled_at = clock.now()
        client.save(update_fields=["active", "disabled_at"])
        AccessToken.objects.filter(client=client).delete()
        _audit(client, "disable")
    return client
