"""SMART Backend Services authorization: a signed client assertion in, a bearer token out.

The client proves who it is with a JWT signed by one of its registered keys (RS384 or
ES384): `iss` = `sub` = its client_id, `aud` = this token endpoint's URL, an `exp` at
most five minutes ahead, and a `jti` never used before (kept until the assertion
expires). The access token is 256 random bits, stored as SHA-256 only, valid for five
minutes, and carries the granted scopes (careloop.fhirapi.scopes).
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Final

import jwt
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from careloop.core import clock
from careloop.fhirapi.models import AccessToken, Client, UsedAssertion
from careloop.fhirapi.scopes import grant
from careloop.security.audit import audit_record
from careloop.security.models import AuditEvent

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS: Final = ("RS384", "ES384")
TOKEN_LIFETIME: Final = datetime.timedelta(minutes=5)
MAX_ASSERTION_LIFETIME: Final = datetime.timedelta(minutes=5)
# Clocks differ a little between hosts; an assertion a few seconds off is not an attack.
LEEWAY: Final = datetime.timedelta(seconds=30)
MAX_ASSERTION_LENGTH: Final = 8192


class OAuthError(Exception):
    """A refused token request: `error` is the RFC 6749 code, `why` a PHI-free reason."""

    def __init__(self, error: str, why: str, status: int = 400) -> None:
        super().__init__(why)
        self.error = error
        self.why = why
        self.status = status


@dataclass(frozen=True)
class IssuedToken:
    raw: str
    scopes: list[str]
    expires_in: int


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _client_of(assertion: str) -> Client:
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise OAuthError("invalid_client", "client assertion is not a JWT") from None
    issuer = claims.get("iss")
    client = Client.objects.filter(client_id=str(issuer)).first() if issuer else None
    if client is None or not client.active:
        raise OAuthError("invalid_client", "unknown or disabled client", status=401)
    return client


def _signing_key(client: Client, assertion: str) -> Any:
    header = jwt.get_unverified_header(assertion)
    if header.get("alg") not in ALGORITHMS:
        raise OAuthError("invalid_client", "assertion must be signed RS384 or ES384")
    try:
        keys = jwt.PyJWKSet.from_dict(client.jwks).keys
    except jwt.PyJWKError:
        raise OAuthError(
            "invalid_client", "the client's registered JWKS holds no usable key"
        ) from None
    kid = header.get("kid")
    for key in keys:
        if kid is None or key.key_id == kid:
            return key
    raise OAuthError("invalid_client", "no registered key matches the assertion's kid")


def _verify(client: Client, assertion: str, token_url: str) -> dict[str, Any]:
    key = _signing_key(client, assertion)
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key=key,
            algorithms=list(ALGORITHMS),
            audience=token_url,
            # Expiry is checked below against careloop's clock, which tests can move.
            options={
                "require": ["iss", "sub", "aud", "exp", "jti"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidAudienceError:
        raise OAuthError("invalid_client", "assertion aud is not this token endpoint") from None
    except jwt.InvalidTokenError:
        raise OAuthError("invalid_client", "assertion signature or claims invalid") from None
    if claims["iss"] != client.client_id or claims["sub"] != client.client_id:
        raise OAuthError("invalid_client", "assertion iss and sub must both be the client_id")
    at = clock.now()
    try:
        expires = datetime.datetime.fromtimestamp(int(claims["exp"]), tz=datetime.UTC)
    except (TypeError, ValueError, OverflowError):
        raise OAuthError("invalid_client", "assertion exp is not a time") from None
    if expires <= at - LEEWAY:
        raise OAuthError("invalid_client", "assertion expired")
    if expires > at + MAX_ASSERTION_LIFETIME + LEEWAY:
        raise OAuthError("invalid_client", "assertion exp is more than five minutes ahead")
    claims["_expires"] = expires
    return claims


def _spend(client: Client, jti: str, expires: datetime.datetime) -> None:
    """Record the assertion's jti; a second use of the same jti is refused."""
    UsedAssertion.objects.filter(expires_at__lt=clock.now() - LEEWAY).delete()
    try:
        with transaction.atomic():
            UsedAssertion.objects.create(client=client, jti=jti[:200], expires_at=expires)
    except IntegrityError:
        raise OAuthError("invalid_client", "assertion jti already used") from None


def _audit(request: HttpRequest, client_id: str, outcome: str, why: str = "") -> None:
    audit_record(
        action="fhir.token",
        request=request,
        actor=AnonymousUser(),
        actor_kind=AuditEvent.ActorKind.INTEGRATION if client_id else None,
        actor_id=client_id,
        resource_type="fhir_access_token",
        outcome=outcome,
        reason=why,
    )


def _check_form(form: dict[str, str]) -> None:
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", "client_assertion_type must be jwt-bearer")
    if not form.get("client_assertion") or len(form["client_assertion"]) > MAX_ASSERTION_LENGTH:
        raise OAuthError("invalid_request", "client_assertion is missing or too long")
    if not form.get("scope", "").strip():
        raise OAuthError("invalid_scope", "scope is required")


def token_issue(*, request: HttpRequest, form: dict[str, str], token_url: str) -> IssuedToken:
    """A new access token for a valid token request, or `OAuthError`; both are audited."""
    client: Client | None = None
    try:
        with transaction.atomic():
            _check_form(form)
            client = _client_of(form["client_assertion"])
            claims = _verify(client, form["client_assertion"], token_url)
            _spend(client, str(claims["jti"]), claims["_expires"])
            scopes = grant(form["scope"].split(), client.scopes)
            if not scopes:
                raise OAuthError("invalid_scope", "none of the requested scopes is allowed")
            raw = secrets.token_urlsafe(32)
            at = clock.now()
            AccessToken.objects.create(
                client=client,
                digest=token_digest(raw),
                scopes=scopes,
                issued_at=at,
                expires_at=at + TOKEN_LIFETIME,
            )
            _audit(request, client.client_id, "success")
    except OAuthError as error:
        # Recorded after the refused work rolled back, so the refusal itself stays.
        _audit(request, client.client_id if client else "", "denied", error.why)
        raise
    return IssuedToken(raw=raw, scopes=scopes, expires_in=int(TOKEN_LIFETIME.total_seconds()))


def token_authenticate(*, raw: str) -> AccessToken | None:
    """The live token a bearer value names (with its client), or None."""
    if not raw or len(raw) > 100:
        return None
    token = (
        AccessToken.objects.select_related("client")
        .filter(digest=token_digest(raw), expires_at__gt=clock.now())
        .first()
    )
    if token is None or not token.client.active:
        return None
    return token
