"""The FHIR Bulk Data `$export` client: kick off, wait, download.

It speaks only the protocol (Bulk Data Access IG v2): it knows nothing of careloop's
tables. `careloop.ehr.sync` gives it a transport that carries the SMART access token,
and takes the downloaded folder to the importer.

What it copes with, because live EHRs do all of it: a 401 when the token expired
(one new token, then the request again), 429 and 5xx (waits `Retry-After`, in seconds
or as an HTTP date, else backs off), a download that breaks off (resumed with `Range`
when the server honours it, else that file starts again), and an export that never
finishes (an overall deadline, after which the export is cancelled).

Messages of `BulkError` name files by their number and type, never by their contents.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from careloop.ehr.smart import AccessToken

FHIR_JSON: Final = "application/fhir+json"
NDJSON: Final = "application/fhir+ndjson"
RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


class BulkError(Exception):
    """The export could not be completed; the message is one line without PHI."""


@dataclass(frozen=True)
class ExportFile:
    number: int  # 1-based position in the manifest's list, to name it in messages
    type: str
    url: str
    count: int | None


@dataclass(frozen=True)
class Manifest:
    transaction_time: datetime.datetime
    requires_token: bool
    output: list[ExportFile]
    error: list[ExportFile]


@dataclass
class Transport:
    """An HTTP client that carries the bearer token and retries what may be retried.

    `token_source` is called for the first token and again, once per request, when the
    server answers 401 (an expired or revoked token). Several download threads share
    one transport; a 401 seen by several of them renews the token once.
    """

    http: httpx.Client
    token_source: Callable[[], AccessToken]
    retries: int = 5
    backoff: float = 1.0
    max_wait: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    _token: AccessToken | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def _current(self, *, stale: AccessToken | None = None) -> AccessToken:
        with self._lock:
            token = self._token
            if token is None or token is stale or not token.fresh():
                token = self._token = self.token_source()
            return token

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        auth: bool = True,
        params: Sequence[tuple[str, str]] = (),
    ) -> Iterator[httpx.Response]:
        """The response to a request after token renewal and retries; closed on exit."""
        response = self._send(method, url, headers=headers, auth=auth, params=params)
        try:
            yield response
        finally:
            response.close()

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        auth: bool,
        params: Sequence[tuple[str, str]],
    ) -> httpx.Response:
        token = self._current() if auth else None
        renewed = False
        attempt = 0
        while True:
            sent = dict(headers)
            if token is not None:
                sent["Authorization"] = f"Bearer {token.value}"
            request = self.http.build_request(method, url, headers=sent, params=list(params))
            try:
                response = self.http.send(request, stream=True)
            except httpx.TransportError as error:
                attempt += 1
                if attempt > self.retries:
                    raise BulkError(
                        f"{method} {_where(url)} failed {attempt} times ({type(error).__name__})"
                    ) from None
                self.sleep(self._delay(attempt, None))
                continue
            if response.status_code == 401 and token is not None and not renewed:
                response.close()
                token, renewed = self._current(stale=token), True
                continue
            if response.status_code in RETRYABLE and attempt < self.retries:
                attempt += 1
                wait = self._delay(attempt, response.headers.get("Retry-After"))
                response.close()
                self.sleep(wait)
                continue
            return response

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        told = retry_after_seconds(retry_after)
        if told is not None:
            return min(told, self.max_wait)
        return min(self.backoff * 2.0 ** (attempt - 1), self.max_wait)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _where(url: str) -> str:
    """A URL without its query, for messages (an export's query names only types)."""
    return url.split("?", 1)[0]


def _outcome_code(response: httpx.Response) -> str:
    """The issue code of an OperationOutcome body, or the status text."""
    try:
        response.read()
        body = response.json()
        issue = body["issue"][0]
        return str(issue.get("code") or "unknown")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, httpx.HTTPError):
        return response.reason_phrase or "no detail"


def fhir_instant(at: datetime.datetime) -> str:
    text = at.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


# --- kick-off and status --------------------------------------------------------------


def export_kickoff(
    transport: Transport,
    *,
    fhir_base: str,
    group_id: str,
    types: Sequence[str],
    since: datetime.datetime | None,
) -> str:
    """Start an export (Group level when a group is given, else Patient level); the
    status URL the server answers with."""
    base = fhir_base.rstrip("/")
    url = f"{base}/Group/{group_id}/$export" if group_id else f"{base}/Patient/$export"
    params = [("_outputFormat", NDJSON), ("_type", ",".join(types))]
    if since is not None:
        params.append(("_since", fhir_instant(since)))
    headers = {"Accept": FHIR_JSON, "Prefer": "respond-async"}
    with transport.stream("GET", url, headers=headers, params=params) as response:
        if response.status_code != 202:
            raise BulkError(
                f"the EHR refused the export ({response.status_code}, {_outcome_code(response)})"
            )
        location = response.headers.get("Content-Location")
    if not location:
        raise BulkError("the EHR accepted the export but gave no Content-Location to poll")
    return str(httpx.URL(url).join(location))


def export_wait(
    transport: Transport,
    status_url: str,
    *,
    deadline: float,
    poll: float = 5.0,
    progress: Callable[[str], None] = lambda _: None,
) -> Manifest:
    """Poll the status URL until the manifest is ready; cancel the export and raise
    when `deadline` (a `time.monotonic()` value) passes first."""
    headers = {"Accept": "application/json"}
    wait = poll
    while True:
        with transport.stream("GET", status_url, headers=headers) as response:
            if response.status_code == 200:
                response.read()
                return manifest_parse(response)
            if response.status_code != 202:
                code = _outcome_code(response)
                raise BulkError(f"the export failed at the EHR ({response.status_code}, {code})")
            progress(response.headers.get("X-Progress", "in progress")[:100])
            told = retry_after_seconds(response.headers.get("Retry-After"))
        # Without a Retry-After, back off gently so a slow export is not hammered.
        wait = told if told is not None else min(wait * 1.5, 60.0)
        left = deadline - time.monotonic()
        if left <= 0:
            export_cancel(transport, status_url)
            raise BulkError("the export did not finish in time; it was cancelled at the EHR")
        transport.sleep(min(wait, left))


def export_cancel(transport: Transport, status_url: str) -> None:
    """DELETE the status URL: cancels a running export, or tells the EHR that a finished
    one's files may go. Best effort: the export is already done with or abandoned."""
    try:
        with transport.stream("DELETE", status_url, headers={"Accept": FHIR_JSON}):
            pass
    except (BulkError, httpx.HTTPError):
        return


def _files(entries: Any) -> list[ExportFile]:
    if not isinstance(entries, list):
        return []
    files = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise BulkError(f"the manifest's file {number} has no url")
        count = entry.get("count")
        files.append(
            ExportFile(
                number=number,
                type=str(entry.get("type") or ""),
                url=entry["url"],
                count=count if isinstance(count, int) else None,
            )
        )
    return files


def manifest_parse(response: httpx.Response) -> Manifest:
    try:
        body = response.json()
        stamp = datetime.datetime.fromisoformat(str(body["transactionTime"]))
    except (ValueError, KeyError, TypeError):
        raise BulkError("the export's manifest is not JSON with a transactionTime") from None
    if stamp.tzinfo is None:
        raise BulkError("the manifest's transactionTime has no time zone")
    return Manifest(
        transaction_time=stamp.astimezone(datetime.UTC),
        requires_token=bool(body.get("requiresAccessToken", False)),
        output=_files(body.get("output")),
        error=_files(body.get("error")),
    )


# --- downloads ---------------------------------------------------------------------------


def local_name(file: ExportFile, *, kind: str = "") -> str:
    """The file's name on disk: its number and type, so the importer knows the type."""
    type_name = file.type if _TYPE_NAME.match(file.type) else "Unknown"
    return f"{kind}{file.number:03d}.{type_name}.ndjson"


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(?:\d+|\*)$", value or "")
    return int(match.group(1)) if match else None


def _expected_size(response: httpx.Response, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def download(
    transport: Transport,
    file: ExportFile,
    folder: Path,
    *,
    auth: bool,
    kind: str = "",
    attempts: int = 5,
) -> Path:
    """Stream one export file to `folder`; a break resumes from where it stopped.

    The bytes are kept as sent: a gzip-encoded body is stored as `.ndjson.gz` (which the
    importer reads), so a `Range` always counts the same bytes.
    """
    part = folder / (local_name(file, kind=kind) + ".part")
    encoding: str | None = None
    validator: str | None = None
    for _ in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Accept": NDJSON, "Accept-Encoding": "gzip, identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if validator:
                headers["If-Range"] = validator
        with transport.stream("GET", file.url, headers=headers, auth=auth) as response:
            status = response.status_code
            if status == 404 or status == 410:
                raise BulkError(
                    f"export file {file.number} ({file.type or 'no type'}) is missing at the "
                    f"EHR ({status}): the export is incomplete"
                )
            if status not in (200, 206) or (status == 206 and not have):
                raise BulkError(
                    f"export file {file.number} ({file.type or 'no type'}) could not be "
                    f"downloaded ({status}, {_outcome_code(response)})"
                )
            sent_encoding = response.headers.get("Content-Encoding", "identity").lower()
            resumed = (
                status == 206
                and _content_range_start(response.headers.get("Content-Range")) == have
                and sent_encoding == encoding
            )
            if status == 206 and not resumed:
                part.unlink()  # a range that does not continue this file: start again
                continue
            if not resumed:
                have, encoding = 0, sent_encoding
            if encoding not in ("identity", "gzip"):
                raise BulkError(f"export file {file.number} came in an unknown {encoding} encoding")
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            expected = _expected_size(response, have)
            try:
                _write(response, part, append=resumed)
            except httpx.TransportError:
                continue  # broke off: the next attempt asks for the rest
        if expected is not None and part.stat().st_size < expected:
            continue
        final = part.with_name(
            part.name.removesuffix(".part") + (".gz" if encoding == "gzip" else "")
        )
        part.rename(final)
        return final
    raise BulkError(
        f"export file {file.number} ({file.type or 'no type'}) broke off {attempts} times"
    )


def _write(response: httpx.Response, path: Path, *, append: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
        for chunk in response.iter_raw():  # as received: a break keeps what came
            out.write(chunk)


def download_all(
    transport: Transport,
    files: Sequence[ExportFile],
    folder: Path,
    *,
    auth: bool,
    threads: int,
    kind: str = "",
) -> list[Path]:
    """Download every file, a few at a time; the first failure stops the rest."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not files:
        return []
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="bulk") as pool:
        futures = [
            pool.submit(download, transport, file, folder, auth=auth, kind=kind) for file in files
        ]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def local_manifest(
    manifest: Manifest, files: Sequence[ExportFile], paths: Sequence[Path], request: str
) -> dict[str, Any]:
    """The manifest of the downloaded folder, naming local files, for the importer."""
    output = []
    for file, path in zip(files, paths, strict=True):
        entry: dict[str, Any] = {"type": file.type, "url": path.name}
        if file.count is not None:
            entry["count"] = file.count
        output.append(entry)
    return {
        "transactionTime": fhir_instant(manifest.transaction_time),
        "request": request,
        "requiresAccessToken": False,
        "output": output,
        "error": [],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1)
