"""A loopback FHIR Bulk Data server with a SMART token endpoint, for the error cases.

It behaves as the Bulk Data Access IG and SMART Backend Services say a server may:
answers the token endpoint only for a valid signed client assertion, checks the bearer
token on every request, answers the kick-off with 202 and a Content-Location, keeps a
client polling with 202, `X-Progress` and `Retry-After`, then serves the manifest and
the NDJSON files (with `Range` support unless switched off).

A test arranges misbehaviour through `BulkServer.script`: fail the next N requests of a
kind with a status, expire every token after the Nth file request, cut a file's body
short once, drop a listed file. `requests` records what the client sent.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt


@dataclass
class Script:
    # kind ("token", "kickoff", "status", "file:<name>") -> statuses to answer, in order
    fail: dict[str, list[int]] = field(default_factory=dict)
    retry_after: str = "0"
    polls_before_ready: int = 1
    # After this many file requests, every token issued so far stops working.
    expire_tokens_after_files: int | None = None
    # Files whose body is cut after this many bytes, once.
    cut_once: dict[str, int] = field(default_factory=dict)
    ranges: bool = True
    missing: set[str] = field(default_factory=set)
    error_lines: list[dict[str, Any]] = field(default_factory=list)
    token_lifetime: int = 300


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0


class BulkServer:
    def __init__(self, *, files: dict[str, bytes], client_id: str, jwks: dict[str, Any]) -> None:
        self.files = files
        self.client_id = client_id
        self.jwks = jwks
        self.script = Script()
        self.requests: list[Seen] = []
        self.tokens: set[str] = set()
        self.transaction_time = "2026-11-20T10:00:00.000Z"
        self._polls = 0
        self._file_requests = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.root = f"http://{host!s}:{port}"
        self.fhir_base = f"{self.root}/fhir"
        self.token_url = f"{self.root}/auth/token"

    # --- helpers for tests ----------------------------------------------------------

    def seen(self, prefix: str) -> list[Seen]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def _next_failure(self, kind: str) -> int | None:
        with self._lock:
            queue = self.script.fail.get(kind)
            return queue.pop(0) if queue else None

    # --- endpoints ------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            key = next(
                k for k in jwt.PyJWKSet.from_dict(self.jwks).keys if k.key_id == header["kid"]
            )
            claims = jwt.decode(
                assertion,
                key=key,
                algorithms=["RS384", "ES384"],
                audience=self.token_url,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except (jwt.PyJWTError, StopIteration, KeyError):
            return 401, {"error": "invalid_client"}
        if claims["iss"] != self.client_id or claims["sub"] != self.client_id:
            return 401, {"error": "invalid_client"}
        if claims["exp"] > time.time() + 300:
            return 401, {"error": "invalid_client"}
        value = secrets.token_urlsafe(16)
        with self._lock:
            self.tokens.add(value)
        body = {"access_token": value, "token_type": "bearer", "scope": form.get("scope", "")}
        return 200, {**body, "expires_in": self.script.token_lifetime}

    def authorised(self, headers: dict[str, str]) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and value in self.tokens

    def manifest(self) -> dict[str, Any]:
        output = [
            {"type": name.split(".")[0], "url": f"{self.root}/files/{name}", "count": _lines(body)}
            for name, body in self.files.items()
        ]
        output += [
            {"type": name.split(".")[0], "url": f"{self.root}/files/{name}"}
            for name in sorted(self.script.missing)
        ]
        error = []
        if self.script.error_lines:
            error.append({"type": "OperationOutcome", "url": f"{self.root}/files/errors.ndjson"})
        return {
            "transactionTime": self.transaction_time,
            "request": f"{self.fhir_base}/Patient/$export",
            "requiresAccessToken": True,
            "output": output,
            "error": error,
        }

    def file_body(self, name: str) -> bytes | None:
        if name == "errors.ndjson" and self.script.error_lines:
            return b"".join(json.dumps(line).encode() + b"\n" for line in self.script.error_lines)
        return self.files.get(name)

    def count_file_request(self) -> None:
        with self._lock:
            self._file_requests += 1
            limit = self.script.expire_tokens_after_files
            if limit is not None and self._file_requests >= limit:
                self.tokens.clear()
                self.script.expire_tokens_after_files = None

    def poll(self) -> bool:
        """True when the export is ready."""
        with self._lock:
            self._polls += 1
            return self._polls > self.script.polls_before_ready


def _lines(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line.strip())


def _handler(server: BulkServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        seen: Seen

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _reply(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.seen.status = status

        def _json(self, status: int, data: dict[str, Any], **headers: str) -> None:
            self._reply(
                status, json.dumps(data).encode(), {"Content-Type": "application/json", **headers}
            )

        def _outcome(self, status: int, code: str, **headers: str) -> None:
            issue = {"severity": "error", "code": code, "diagnostics": "loopback"}
            self._json(status, {"resourceType": "OperationOutcome", "issue": [issue]}, **headers)

        def _record(self) -> tuple[str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.seen = Seen(self.command, parts.path, parse_qs(parts.query), headers)
            with server._lock:
                server.requests.append(self.seen)
            return parts.path, parse_qs(parts.query)

        def _fail(self, kind: str) -> bool:
            status = server._next_failure(kind)
            if status is None:
                return False
            extra = {"Retry-After": server.script.retry_after} if status in (429, 503) else {}
            code = {401: "login", 404: "not-found", 429: "throttled"}.get(status, "transient")
            self._outcome(status, code, **extra)
            return True

        def do_POST(self) -> None:
            path, _ = self._record()
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if path != "/auth/token":
                self._outcome(404, "not-found")
                return
            if self._fail("token"):
                return
            status, body = server.token(form)
            self._json(status, body, **{"Cache-Control": "no-store"})

        def do_DELETE(self) -> None:
            self._record()
            self._reply(202)

        def do_GET(self) -> None:
            path, _query = self._record()
            if not server.authorised(self.seen.headers):
                self._outcome(401, "login", **{"WWW-Authenticate": "Bearer"})
                return
            if path.endswith("/$export"):
                self._kickoff()
            elif path.startswith("/fhir/status/"):
                self._status()
            elif path.startswith("/files/"):
                self._file(path.removeprefix("/files/"))
            else:
                self._outcome(404, "not-found")

        def _kickoff(self) -> None:
            if self._fail("kickoff"):
                return
            if "respond-async" not in self.headers.get("Prefer", ""):
                self._outcome(400, "invalid")
                return
            self._reply(202, headers={"Content-Location": f"{server.fhir_base}/status/job1"})

        def _status(self) -> None:
            if self._fail("status"):
                return
            if not server.poll():
                progress = {
                    "X-Progress": "collecting (50%)",
                    "Retry-After": server.script.retry_after,
                }
                self._reply(202, headers=progress)
                return
            self._json(200, server.manifest())

        def _file(self, name: str) -> None:
            server.count_file_request()
            if self._fail(f"file:{name}"):
                return
            body = server.file_body(name)
            if body is None or name in server.script.missing:
                self._outcome(404, "not-found")
                return
            start = 0
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes=") and server.script.ranges:
                start = int(wanted.removeprefix("bytes=").split("-")[0])
            cut = server.script.cut_once.pop(name, None)
            headers = {"Content-Type": "application/fhir+ndjson", "ETag": '"v1"'}
            if server.script.ranges:
                headers["Accept-Ranges"] = "bytes"
            status = 200
            if start:
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            rest = body[start:]
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(rest)))
            self.end_headers()
            self.seen.status = status
            if cut is not None:
                # Promise the whole body, send part of it, hang up: a broken download.
                self.wfile.write(rest[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(rest)

    return Handler


@contextmanager
def running(server: BulkServer) -> Iterator[BulkServer]:
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)
