"""A loopback Web Push service, and browsers that subscribe to it.

`PushService` answers `POST /push/{token}` as a real push service does (RFC 8030):
it checks the VAPID `Authorization: vapid t=<JWT>,k=<key>` header (RFC 8292) by
verifying the JWT's ES256 signature with the application server key the browser
subscribed with, and its audience and expiry; it refuses anything but `aes128gcm`.
It then hands the ciphertext to the subscribed `Browser`, which decrypts it with its
own P-256 key and auth secret as a browser does (RFC 8291), so a test reads what the
patient's browser would show. 201 with a Location on success; 410 for a subscription
the browser dropped (`drop`); a scripted answer first when one is queued
(`fail_next(429, retry_after=120)`, `fail_next(503)`).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """The browser's half of a subscription: made as `PushManager.subscribe()` makes it."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    def keys(self) -> dict[str, str]:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(point), "auth": b64url(self.auth_secret)}

    def decrypt(self, body: bytes) -> Any:
        plaintext = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth_secret, version="aes128gcm"
        )
        return json.loads(plaintext)


@dataclass
class Delivered:
    token: str
    claims: dict[str, Any]
    headers: dict[str, str]
    notification: dict[str, Any]


@dataclass
class PushService:
    # The application server key (VAPID public key) browsers subscribed with.
    server_key: str
    delivered: list[Delivered] = field(default_factory=list)
    # (status, why) for every request, in order.
    answers: list[tuple[int, str]] = field(default_factory=list)
    _browsers: dict[str, Browser] = field(default_factory=dict)
    _dropped: set[str] = field(default_factory=set)
    _script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> PushService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                # Header names are case-insensitive: keep them lower-cased.
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra = service.answer(self.path, headers, body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def origin(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def subscribe(self, browser: Browser) -> dict[str, Any]:
        """The subscription JSON the browser hands the portal page."""
        token = uuid.uuid4().hex
        self._browsers[token] = browser
        return {
            "endpoint": f"{self.origin}/push/{token}",
            "expirationTime": None,
            "keys": browser.keys(),
        }

    def drop(self, subscription: dict[str, Any]) -> None:
        """The browser unsubscribed (or the subscription expired): 410 from now on."""
        self._dropped.add(subscription["endpoint"].rsplit("/", 1)[1])

    def fail_next(self, status: int, *, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._script.append((status, headers))

    def notifications(self) -> list[dict[str, Any]]:
        return [d.notification for d in self.delivered]

    # --- the protocol -------------------------------------------------------------------
    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            status, why, extra = self._answer(path, headers, body)
            self.answers.append((status, why))
        return status, extra

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, dict[str, str]]:
        token = path.removeprefix("/push/")
        if not path.startswith("/push/") or token not in self._browsers:
            return 404, "unknown subscription", {}
        claims = self._vapid_claims(headers.get("authorization", ""))
        if claims is None:
            return 401, "bad vapid", {}
        if self._script:
            status, extra = self._script.popleft()
            return status, "scripted", extra
        if token in self._dropped:
            return 410, "gone", {}
        if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
            return 400, "bad encoding", {}
        notification = self._browsers[token].decrypt(body)
        self.delivered.append(Delivered(token, claims, headers, notification))
        return 201, "delivered", {"Location": f"{self.origin}/message/{uuid.uuid4().hex}"}

    def _vapid_claims(self, authorization: str) -> dict[str, Any] | None:
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return None
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if parts.get("k") != self.server_key:
            return None
        key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), unb64url(self.server_key)
        )
        try:
            claims: dict[str, Any] = jwt.decode(
                parts.get("t", ""),
                key=key,
                algorithms=["ES256"],
                audience=self.origin,
                options={"require": ["exp", "aud", "sub"]},
            )
        except jwt.InvalidTokenError:
            return None
        # RFC 8292 4.2: no more than 24 hours ahead; a contact for the operator.
        if claims["exp"] > time.time() + 24 * 60 * 60:
            return None
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            return None
        return claims


def vapid_key_pair() -> tuple[str, str]:
    """A fresh VAPID key pair as settings hold it: (private scalar, public point), base64url,
    made with `cryptography` alone, not with the code under test."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(private), b64url(public)


def push_service_running(settings: Any) -> Iterator[PushService]:
    """For a fixture: a push service on loopback, and careloop set up to use it."""
    private, public = vapid_key_pair()
    settings.VAPID_PRIVATE_KEY, settings.VAPID_PUBLIC_KEY = private, public
    settings.VAPID_SUBJECT = "mailto:care@riverbend.example"
    settings.PUSH_ALLOW_LOOPBACK = True
    service = PushService(server_key=public).start()
    try:
        yield service
    finally:
        service.stop()
