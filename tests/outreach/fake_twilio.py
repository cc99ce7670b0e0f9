"""A loopback SMS provider that answers like Twilio's Messages API.

`POST /2010-04-01/Accounts/{sid}/Messages.json` with HTTP Basic auth (account sid and
auth token): 201 and a JSON message resource with a new `SM...` sid; 400 with error
code 21211 for a number that is not E.164 or is listed in `bad_numbers`; a scripted
answer first when one is queued (`fail_next(429, retry_after=7)`, `fail_next(503)`).
A repeated `Idempotency-Key` gets the first answer's resource back and is not delivered
again. When the request names a `StatusCallback`, the provider posts `sent` and then
`delivered` there, signed with the auth token (X-Twilio-Signature) as Twilio signs.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx

from careloop.outreach.webhooks import twilio_signature

E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@dataclass
class Received:
    form: dict[str, str]
    idempotency_key: str
    status: int


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-auth-token"
    bad_numbers: set[str] = field(default_factory=set)
    requests: list[Received] = field(default_factory=list)
    delivered: list[dict[str, str]] = field(default_factory=list)
    callbacks: list[tuple[str, int]] = field(default_factory=list)
    _script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    _by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> FakeTwilio:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, headers, body = provider.answer(self.path, dict(self.headers), form)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                payload = json.dumps(body).encode()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, status: int, *, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._script.append((status, headers))

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> None:
        for thread in list(self._threads):
            thread.join(timeout=timeout)
        assert len(self.callbacks) >= count, self.callbacks

    # --- the API ------------------------------------------------------------------------
    def answer(
        self, path: str, headers: dict[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        key = headers.get("Idempotency-Key", "")
        with self._lock:
            status, extra, body = self._answer(path, headers, form, key)
            self.requests.append(Received(form=form, idempotency_key=key, status=status))
        return status, extra, body

    def _answer(
        self, path: str, headers: dict[str, str], form: dict[str, str], key: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return 404, {}, {"code": 20404, "message": "The requested resource was not found"}
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("Authorization") != f"Basic {expected}":
            return 401, {}, {"code": 20003, "message": "Authenticate"}
        if self._script:
            status, extra = self._script.popleft()
            return status, extra, {"code": 20429 if status == 429 else 20500, "status": status}
        if key and key in self._by_key:
            return 201, {}, self._by_key[key]
        to = form.get("To", "")
        if not E164.match(to) or to in self.bad_numbers:
            return (
                400,
                {},
                {
                    "code": 21211,
                    "message": f"The 'To' number {to} is not a valid phone number.",
                    "status": 400,
                },
            )
        resource = {
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": self.account_sid,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "to": to,
            "body": form.get("Body"),
            "status": "accepted",
        }
        if key:
            self._by_key[key] = resource
        self.delivered.append(form)
        if form.get("StatusCallback"):
            thread = threading.Thread(
                target=self._report, args=(form["StatusCallback"], resource["sid"]), daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return 201, {}, resource

    def _report(self, url: str, sid: str) -> None:
        for status in ("sent", "delivered"):
            params = {
                "AccountSid": self.account_sid,
                "MessageSid": sid,
                "MessageStatus": status,
            }
            signature = twilio_signature(url=url, params=params, token=self.auth_token)
            response = httpx.post(
                url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10
            )
            self.callbacks.append((status, response.status_code))
