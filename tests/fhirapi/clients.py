"""FHIR API test clients: a registered client with its own key, and SMART assertions."""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client as HttpClient

from careloop.core import clock
from careloop.fhirapi.clients import client_add
from careloop.fhirapi.models import Client

TOKEN_URL = "https://testserver/fhir/r4/auth/token"


@dataclass(frozen=True)
class Registered:
    client: Client
    key: rsa.RSAPrivateKey
    kid: str

    def assertion(self, *, aud: str = TOKEN_URL, **changes: Any) -> str:
        claims: dict[str, Any] = {
            "iss": self.client.client_id,
            "sub": self.client.client_id,
            "aud": aud,
            "exp": int((clock.now() + datetime.timedelta(minutes=4)).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        claims.update(changes)
        return jwt.encode(claims, self.key, algorithm="RS384", headers={"kid": self.kid})


def public_jwks(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update(kid=kid, alg="RS384", use="sig")
    return {"keys": [public]}


def register(
    role: str = "care_coordinator", scopes: tuple[str, ...] = ("system/*.read",), name: str = ""
) -> Registered:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex[:8]
    client = client_add(
        name=name or f"{role}-{kid}", jwks=public_jwks(key, kid), scopes=list(scopes), role=role
    )
    return Registered(client=client, key=key, kid=kid)


def token_request(
    http: HttpClient, registered: Registered, scope: str = "system/*.read", **kw: Any
) -> Any:
    return http.post(
        "/fhir/r4/auth/token",
        {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": kw.pop("assertion", None) or registered.assertion(),
        },
        secure=True,
    )


def bearer(
    http: HttpClient, registered: Registered, scope: str = "system/*.read"
) -> dict[str, str]:
    response = token_request(http, registered, scope)
    assert response.status_code == 200, response.content
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
