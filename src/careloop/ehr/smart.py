"""SMART Backend Services, client side: careloop's signing keys, its client assertion,
and the access token an EHR gives for it.

careloop signs with its own key pair (`careloop ehr keygen`); the EHR holds the public
half (the JWKS printed at key generation). Private keys live in
`CARELOOP_VAR_DIR/keys/ehr/<kid>.pem`: PKCS#8, mode 0600, and encrypted with a
passphrase derived from careloop's master key, so a copied key file is useless without
the master key (and a host that has the master key can use a copied file: that is how
several worker hosts share one registered key).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from careloop.core import clock
from careloop.security.crypto import derive

ALGORITHMS: Final = ("RS384", "ES384")
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The SMART limit is five minutes; a little less leaves room for clock skew.
ASSERTION_LIFETIME: Final = datetime.timedelta(minutes=4)
# A token this close to expiry is renewed before it is used.
TOKEN_MARGIN: Final = datetime.timedelta(seconds=30)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class SmartError(Exception):
    """Authorization with the EHR failed; the message names the cause (never a token)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        jwk: dict[str, Any] = (
            RSAAlgorithm.to_jwk(public, as_dict=True)
            if isinstance(public, rsa.RSAPublicKey)
            else ECAlgorithm.to_jwk(public, as_dict=True)
        )
        jwk.update(kid=self.kid, alg=self.alg, use="sig", key_ops=["verify"])
        return jwk


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: datetime.datetime

    def fresh(self) -> bool:
        return clock.now() + TOKEN_MARGIN < self.expires_at


def key_dir() -> Path:
    return Path(settings.EHR_KEY_DIR)


def _passphrase() -> bytes:
    return base64.b64encode(derive(b"ehr-smart-signing-key"))


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: a kid that names the key itself, the same on every host."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def key_generate(*, alg: str = "RS384") -> SigningKey:
    """Make a key pair, store its private half encrypted, and return it."""
    if alg not in ALGORITHMS:
        raise SmartError(f"the signing algorithm must be one of {', '.join(ALGORITHMS)}")
    private: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=3072)
        if alg == "RS384"
        else ec.generate_private_key(ec.SECP384R1())
    )
    provisional = SigningKey(kid="-", alg=alg, private=private)
    key = SigningKey(kid=_thumbprint(provisional.public_jwk()), alg=alg, private=private)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(_passphrase()),
    )
    folder = key_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / f"{key.kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def key_load(kid: str) -> SigningKey:
    path = key_dir() / f"{kid}.pem"
    if "/" in kid or not path.is_file():
        raise SmartError(f"no signing key {kid!r} in {key_dir()}; run 'careloop ehr keygen'")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=_passphrase())
    except ValueError:
        raise SmartError(
            f"signing key {kid} does not open with this master key; make a new one with "
            "'careloop ehr keygen' and register its JWKS with the EHR"
        ) from None
    if isinstance(private, rsa.RSAPrivateKey):
        return SigningKey(kid=kid, alg="RS384", private=private)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return SigningKey(kid=kid, alg="ES384", private=private)
    raise SmartError(f"signing key {kid} is neither RSA nor EC")


def keys_all() -> list[SigningKey]:
    """Every stored key, newest first (the newest is the default for a new source)."""
    paths = sorted(key_dir().glob("*.pem"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [key_load(path.stem) for path in paths]


def jwks(keys: list[SigningKey]) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def client_assertion(*, key: SigningKey, client_id: str, token_url: str) -> str:
    """The signed JWT that proves careloop is `client_id` to `token_url`, usable once."""
    at = clock.now()
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": int(at.timestamp()),
        "exp": int((at + ASSERTION_LIFETIME).timestamp()),
        "jti": f"{uuid.uuid4()}{secrets.token_hex(8)}",
    }
    return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid})


def token_request(
    http: httpx.Client, *, key: SigningKey, client_id: str, token_url: str, scope: str
) -> AccessToken:
    """An access token by the client-credentials grant with a signed assertion."""
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key=key, client_id=client_id, token_url=token_url),
    }
    try:
        response = http.post(token_url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise SmartError(f"token endpoint unreachable ({type(error).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict):
        code = body.get("error", "no error code") if isinstance(body, dict) else "no error code"
        raise SmartError(f"token endpoint refused ({response.status_code}, {code})")
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise SmartError("token endpoint answered without an access_token")
    lifetime = body.get("expires_in")
    seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else 300
    return AccessToken(value=token, expires_at=clock.now() + datetime.timedelta(seconds=seconds))
