"""A loopback SMS provider that answers like Twilio's Messages API.

`POST /2010-04-01/Accounts/{sid}/Messages.json` with HTTP Basic auth (account sid and
auth token): 201 and a JSON message resource with a new `SM...` sid; 400 with error
code 21211 for a number that is not E.164 or is listed in `bad_numbers`; a scripted
answer first when one is queued (`fail_next(429, retry_after=7)`, `fail_next(503)`).
A repeated `Idempotency-Key` gets the first answer's resource back and is not delivered
again, unless `honour_idempotency_key` is off: then, like Twilio itself, every request
is a new message (the fault tests count what a resend would deliver twice). When the
request names a `StatusCallback`, the provider posts `sent` and then `delivered` there,
signed with the auth token (X-Twilio-Signature) as Twilio signs.

`GET .../Messages.json?To=...&PageSize=...` lists the messages to a number, newest
first, as Twilio's list does (what careloop's reconciliation reads).

For fault tests the provider can keep a request waiting (`hold_next`): either before
it accepts the message (released, it answers 503 and keeps nothing: the caller died
before the provider committed) or after (released, it answers 201: the provider has
the message whatever became of the caller). `stop()` and `start(port=...)` take it
down and bring it back on the same address, keeping what it has.

Calls: `POST .../Calls.json` (same auth, scripted 429/5xx, Idempotency-Key and 21211
rules as messages) answers 201 with a `CA...` sid and keeps the call's inline TwiML.
A test then plays the patient: `press_key(sid, "1")` posts the digit to the call's
Gather action, and `finish_call(sid, "completed")` posts the final status to its
StatusCallback, each signed with the auth token as Twilio signs.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from careloop.core import clock
from careloop.outreach.webhooks import twilio_signature

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
# A held request is answered after this many seconds even if nobody releases it.
HOLD_LIMIT = 60.0


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the fault tests do it on purpose) is not news.
        pass


@dataclass
class Hold:
    """A request the provider keeps waiting until `release()`."""

    accept: bool
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_reached(self, timeout: float = 30.0) -> None:
        assert self.reached.wait(timeout), "no request reached the held point"

    def release(self) -> None:
        self.released.set()

    def _hold(self) -> None:
        self.reached.set()
        self.released.wait(HOLD_LIMIT)


@dataclass
class Received:
    form: dict[str, str]
    idempotency_key: str
    status: int


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-auth-token"
    honour_idempotency_key: bool = True
    bad_numbers: set[str] = field(default_factory=set)
    requests: list[Received] = field(default_factory=list)
    delivered: list[dict[str, str]] = field(default_factory=list)
    # The Idempotency-Key of each delivery, in the order of `delivered`.
    delivered_keys: list[str] = field(default_factory=list)
    # The message resources, oldest first, as the list endpoint shows them.
    messages: list[dict[str, Any]] = field(default_factory=list)
    lookups: int = 0
    callbacks: list[tuple[str, int]] = field(default_factory=list)
    # Call resources with what the request sent ("form"), oldest first.
    calls: list[dict[str, Any]] = field(default_factory=list)
    _script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    _holds: deque[Hold] = field(default_factory=deque)
    _by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, *, port: int = 0) -> FakeTwilio:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._reply(*provider.list_messages(self.path, dict(self.headers)))

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                self._reply(*provider.answer(self.path, dict(self.headers), form))

            def _reply(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
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

        self.server = _Server(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for hold in self._holds:
            hold.release()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, status: int, *, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._script.append((status, headers))

    def hold_next(self, *, accept: bool) -> Hold:
        """Keep the next message request waiting, before or after accepting it."""
        hold = Hold(accept=accept)
        with self._lock:
            self._holds.append(hold)
        return hold

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
            held = self._holds and path in (self._path, self._calls_path)
            hold = self._holds.popleft() if held else None
        if hold is not None and not hold.accept:
            hold._hold()
            with self._lock:
                self.requests.append(Received(form=form, idempotency_key=key, status=503))
            return 503, {}, {"code": 20500, "status": 503}
        with self._lock:
            status, extra, body = self._answer(path, headers, form, key)
            self.requests.append(Received(form=form, idempotency_key=key, status=status))
        if hold is not None:
            hold._hold()
        return status, extra, body

    def list_messages(
        self, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        url = urlsplit(path)
        if url.path not in (self._path, self._calls_path):
            return 404, {}, {"code": 20404, "message": "The requested resource was not found"}
        if not self._authorised(headers):
            return 401, {}, {"code": 20003, "message": "Authenticate"}
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        size = int(query.get("PageSize", "50"))
        calls = url.path == self._calls_path
        with self._lock:
            self.lookups += 1
            if self._script:
                status, extra = self._script.popleft()
                return status, extra, {"code": 20429 if status == 429 else 20500, "status": status}
            records = [c["resource"] for c in self.calls] if calls else self.messages
            found = [dict(r) for r in reversed(records) if query.get("To") in (None, r["to"])]
        key = "calls" if calls else "messages"
        return 200, {}, {key: found[:size], "page": 0, "page_size": size}

    @property
    def _path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def _authorised(self, headers: dict[str, str]) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return headers.get("Authorization") == f"Basic {expected}"

    def _answer(
        self, path: str, headers: dict[str, str], form: dict[str, str], key: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if path == self._calls_path:
            return self._call(headers, form, key)
        if path != self._path:
            return 404, {}, {"code": 20404, "message": "The requested resource was not found"}
        if not self._authorised(headers):
            return 401, {}, {"code": 20003, "message": "Authenticate"}
        if self._script:
            status, extra = self._script.popleft()
            return status, extra, {"code": 20429 if status == 429 else 20500, "status": status}
        if key and self.honour_idempotency_key and key in self._by_key:
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
            "direction": "outbound-api",
            "date_created": format_datetime(clock.now()),
        }
        if key:
            self._by_key[key] = resource
        self.messages.append(resource)
        self.delivered.append(form)
        self.delivered_keys.append(key)
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
            with self._lock:
                for resource in self.messages:
                    if resource["sid"] == sid:
                        resource["status"] = status
            signature = twilio_signature(url=url, params=params, token=self.auth_token)
            response = httpx.post(
                url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10
            )
            self.callbacks.append((status, response.status_code))

    # --- calls --------------------------------------------------------------------------
    @property
    def _calls_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Calls.json"

    def _call(
        self, headers: dict[str, str], form: dict[str, str], key: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if not self._authorised(headers):
            return 401, {}, {"code": 20003, "message": "Authenticate"}
        if self._script:
            status, extra = self._script.popleft()
            return status, extra, {"code": 20429 if status == 429 else 20500, "status": status}
        if key and self.honour_idempotency_key:
            for call in self.calls:
                if call["idempotency_key"] == key:
                    return 201, {}, call["resource"]
        to = form.get("To", "")
        if not E164.match(to) or to in self.bad_numbers:
            return 400, {}, {"code": 21211, "message": f"The 'To' number {to} is not valid."}
        if not form.get("From") or not (form.get("Twiml") or form.get("Url")):
            return 400, {}, {"code": 21205, "message": "Url or Twiml and From are required."}
        resource = {
            "sid": "CA" + uuid.uuid4().hex,
            "account_sid": self.account_sid,
            "to": to,
            "from": form["From"],
            "status": "queued",
            "direction": "outbound-api",
            "date_created": format_datetime(clock.now()),
        }
        self.calls.append({"resource": resource, "form": form, "idempotency_key": key})
        return 201, {}, resource

    def call(self, sid: str) -> dict[str, Any]:
        return next(c for c in self.calls if c["resource"]["sid"] == sid)

    def _post_signed(self, url: str, params: dict[str, str]) -> httpx.Response:
        signature = twilio_signature(url=url, params=params, token=self.auth_token)
        return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)

    def gather_request(self, sid: str, digits: str) -> tuple[str, dict[str, str]]:
        """The URL and form Twilio would post when the callee presses `digits`."""
        call = self.call(sid)
        # careloop made this TwiML itself (the test reads back what it sent).
        gather = ET.fromstring(call["form"]["Twiml"]).find("Gather")  # noqa: S314
        assert gather is not None, "the call's TwiML has no <Gather>"
        params = {
            "AccountSid": self.account_sid,
            "CallSid": sid,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "From": call["form"]["From"],
            "To": call["form"]["To"],
            "Digits": digits,
        }
        return gather.attrib["action"], params

    def press_key(self, sid: str, digits: str) -> httpx.Response:
        """The callee presses `digits`: the Gather's action is called, signed."""
        url, params = self.gather_request(sid, digits)
        return self._post_signed(url, params)

    def finish_call(self, sid: str, status: str = "completed") -> httpx.Response:
        """The call ends: its final status goes to the StatusCallback, signed."""
        call = self.call(sid)
        call["resource"]["status"] = status
        params = {
            "AccountSid": self.account_sid,
            "CallSid": sid,
            "CallStatus": status,
            "CallDuration": "31" if status == "completed" else "0",
        }
        return self._post_signed(call["form"]["StatusCallback"], params)
