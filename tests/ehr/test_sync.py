"""Bulk Data sync from a live EHR, end to end over real sockets.

Two servers: a loopback one of our own (tests/ehr/bulk_server.py) that misbehaves on
cue, for the error cases the specification allows (401 and token renewal, 429 with
Retry-After, 5xx, error files, partial manifests, broken downloads); and sekmet, a FHIR
server nobody here wrote, for the whole path against someone else's reading of the
specifications (see `sekmet` below).
"""

from __future__ import annotations

import datetime
import email.utils
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from careloop.core.sweep import sweep_now
from careloop.ehr import smart
from careloop.ehr.models import ImportRun, QuarantineItem, RunStatus, Source, SourceRecord
from careloop.ehr.sync import sources_due
from careloop.security.models import AuditEvent
from tests.ehr.bulk_server import BulkServer, running

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ehr_sync"
CLIENT_ID = "careloop-test-client"


def ehr(*args: str) -> str:
    out = io.StringIO()
    call_command("ehr", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def ehr_error(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        ehr(*args)
    message = str(caught.value)
    assert "\n" not in message.strip()
    return message


@pytest.fixture
def ehr_settings(settings: Any, tmp_path: Path) -> Path:
    settings.EHR_KEY_DIR = tmp_path / "keys"
    settings.EHR_WORK_DIR = tmp_path / "work"
    settings.EHR_RETRY_SECONDS = 0.05
    settings.EHR_POLL_SECONDS = 0.05
    settings.EHR_SYNC_SCOPE = "system/*.read"
    call_command("vendor", "add", "Acme EHR", "--kind", "ehr", stdout=io.StringIO())
    call_command(
        "vendor",
        "set-baa",
        "Acme EHR",
        "--status",
        "active",
        "--signed",
        "2020-01-01",
        stdout=io.StringIO(),
    )
    return tmp_path


@pytest.fixture
def jwks(ehr_settings: Path) -> dict[str, Any]:
    printed: dict[str, Any] = json.loads(ehr("keygen", "--alg", "ES384"))
    return printed


def fixture_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(FIXTURES.glob("*.ndjson"))}


@pytest.fixture
def loopback(jwks: dict[str, Any]) -> Iterator[BulkServer]:
    server = BulkServer(files=fixture_files(), client_id=CLIENT_ID, jwks=jwks)
    with running(server):
        ehr(
            "add-source",
            "acme",
            "--fhir-base",
            server.fhir_base,
            "--token-url",
            server.token_url,
            "--client-id",
            CLIENT_ID,
            "--vendor",
            "Acme EHR",
        )
        yield server


def source() -> Source:
    return Source.objects.get(name="acme")


def resources_in_fixtures() -> int:
    return sum(body.count(b"\n") for body in fixture_files().values())


# --- keys and sources --------------------------------------------------------------------


def test_keygen_stores_an_encrypted_private_key_and_prints_only_public_keys(
    ehr_settings: Path,
) -> None:
    printed = json.loads(ehr("keygen"))
    (key,) = printed["keys"]
    assert key["alg"] == "RS384" and key["kty"] == "RSA" and key["kid"]
    assert "d" not in key and "p" not in key
    path = ehr_settings / "keys" / f"{key['kid']}.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # A second key is printed beside the first, so the EHR can accept both while
    # sources move over.
    again = json.loads(ehr("keygen", "--alg", "ES384"))
    assert {k["alg"] for k in again["keys"]} == {"RS384", "ES384"}


def test_a_source_needs_an_active_baa(jwks: dict[str, Any]) -> None:
    call_command("vendor", "add", "Other EHR", "--kind", "ehr", stdout=io.StringIO())
    message = ehr_error(
        "add-source",
        "other",
        "--fhir-base",
        "https://ehr.example.org/fhir",
        "--token-url",
        "https://ehr.example.org/token",
        "--client-id",
        "x",
        "--vendor",
        "Other EHR",
    )
    assert "No active BAA on file for Other EHR" in message
    assert not Source.objects.filter(name="other").exists()


def test_a_source_must_be_reached_over_tls(jwks: dict[str, Any]) -> None:
    message = ehr_error(
        "add-source",
        "plain",
        "--fhir-base",
        "http://ehr.example.org/fhir",
        "--token-url",
        "https://ehr.example.org/token",
        "--client-id",
        "x",
        "--vendor",
        "Acme EHR",
    )
    assert "--fhir-base must be an https:// URL" in message


# --- the protocol, against the loopback server -------------------------------------------------


def test_a_sync_authenticates_exports_downloads_imports_and_moves_the_checkpoint(
    loopback: BulkServer, ehr_settings: Path
) -> None:
    out = ehr("sync", "acme")

    assert "Synced acme: 5 files" in out
    token_call = loopback.seen("/auth/token")[0]
    assert token_call.status == 200
    kickoff = loopback.seen("/fhir/Patient/$export")[0]
    assert kickoff.headers["accept"] == "application/fhir+json"
    assert kickoff.headers["prefer"] == "respond-async"
    assert "Patient" in kickoff.query["_type"][0].split(",")
    assert "_since" not in kickoff.query
    # Polled through a 202 with X-Progress before the manifest came.
    assert [r.status for r in loopback.seen("/fhir/status/")] == [202, 200, 202]
    assert all(r.headers["authorization"].startswith("Bearer ") for r in loopback.seen("/files/"))

    src = source()
    assert src.last_transaction_time == datetime.datetime(2026, 11, 20, 10, tzinfo=datetime.UTC)
    run = ImportRun.objects.get(source=src, kind="bulk-sync")
    assert run.status == RunStatus.DONE
    assert sum(c["read"] for c in run.counts.values()) == resources_in_fixtures()
    assert SourceRecord.objects.filter(source=src, resource_type="Patient").count() == 3
    assert not any((ehr_settings / "work" / "acme").iterdir()), "downloaded PHI left on disk"
    events = AuditEvent.objects.filter(action="ehr.sync", actor_id="acme").order_by("at")
    assert [e.fields[0] for e in events] == ["start", "finish"]
    assert "Patient:3" in events[1].fields


def test_the_next_sync_asks_only_for_changes_since_the_last_transaction_time(
    loopback: BulkServer,
) -> None:
    ehr("sync", "acme")
    loopback.transaction_time = "2026-11-21T10:00:00.000Z"
    ehr("sync", "acme")
    second = loopback.seen("/fhir/Patient/$export")[1]
    assert second.query["_since"] == ["2026-11-20T10:00:00.000Z"]
    assert source().last_transaction_time == datetime.datetime(
        2026, 11, 21, 10, tzinfo=datetime.UTC
    )
    ehr("sync", "acme", "--full")
    assert "_since" not in loopback.seen("/fhir/Patient/$export")[2].query
    ehr("sync", "acme", "--since", "2026-01-01T06:00:00-06:00")
    assert loopback.seen("/fhir/Patient/$export")[3].query["_since"] == ["2026-01-01T12:00:00.000Z"]
    assert "--since takes an ISO time with its zone" in ehr_error(
        "sync", "acme", "--since", "2026-01-01"
    )


def test_the_client_assertion_is_a_signed_single_use_jwt_for_the_token_endpoint(
    loopback: BulkServer, jwks: dict[str, Any]
) -> None:
    key = smart.key_load(jwks["keys"][0]["kid"])
    first = smart.client_assertion(key=key, client_id=CLIENT_ID, token_url=loopback.token_url)
    second = smart.client_assertion(key=key, client_id=CLIENT_ID, token_url=loopback.token_url)
    header = jwt.get_unverified_header(first)
    assert header["alg"] == "ES384" and header["kid"] == key.kid
    public = jwt.PyJWKSet.from_dict(jwks).keys[0]
    claims = jwt.decode(first, key=public, algorithms=["ES384"], audience=loopback.token_url)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert 0 < claims["exp"] - time.time() <= 300
    assert claims["jti"] != jwt.decode(second, options={"verify_signature": False})["jti"]


def test_a_401_gets_one_new_token_and_the_request_again(loopback: BulkServer) -> None:
    loopback.script.fail["kickoff"] = [401]
    ehr("sync", "acme")
    assert len(loopback.seen("/auth/token")) == 2
    assert [r.status for r in loopback.seen("/fhir/Patient/$export")] == [401, 202]


def test_a_401_after_a_new_token_fails_the_sync_and_keeps_the_checkpoint(
    loopback: BulkServer,
) -> None:
    loopback.script.fail["kickoff"] = [401, 401]
    message = ehr_error("sync", "acme")
    assert "the EHR refused the export (401, login)" in message
    assert len(loopback.seen("/auth/token")) == 2
    assert source().last_transaction_time is None
    failed = ImportRun.objects.get(source=source(), status=RunStatus.FAILED)
    assert "refused the export" in failed.error


def test_a_token_that_expires_mid_download_is_renewed(loopback: BulkServer) -> None:
    loopback.script.expire_tokens_after_files = 2
    ehr("sync", "acme")
    assert len(loopback.seen("/auth/token")) == 2
    assert 401 in [r.status for r in loopback.seen("/files/")]
    assert source().last_transaction_time is not None


def test_a_429_waits_the_seconds_in_retry_after(loopback: BulkServer) -> None:
    loopback.script.fail["status"] = [429]
    loopback.script.retry_after = "1"
    started = time.monotonic()
    ehr("sync", "acme")
    assert time.monotonic() - started >= 1.0
    polls = loopback.seen("/fhir/status/")
    assert [p.status for p in polls[:2]] == [429, 202]
    assert source().last_transaction_time is not None


def test_retry_after_as_an_http_date_is_honoured(loopback: BulkServer) -> None:
    loopback.script.fail["kickoff"] = [503]
    loopback.script.retry_after = email.utils.formatdate(time.time() + 2, usegmt=True)
    started = time.monotonic()
    ehr("sync", "acme")
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in loopback.seen("/fhir/Patient/$export")] == [503, 202]


def test_server_errors_are_retried_until_the_file_comes(loopback: BulkServer) -> None:
    loopback.script.fail["file:Observation.ndjson"] = [500, 502]
    ehr("sync", "acme")
    statuses = [r.status for r in loopback.seen("/files/Observation.ndjson")]
    assert statuses == [500, 502, 200]
    run = ImportRun.objects.get(source=source(), kind="bulk-sync")
    assert run.counts["Observation"]["read"] == 36


def test_error_files_go_to_the_quarantine_with_codes_but_no_phi(loopback: BulkServer) -> None:
    loopback.script.error_lines = [
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "processing",
                    "details": {"coding": [{"code": "MSG_RESOURCE_NOT_ALLOWED"}]},
                    "diagnostics": "Observation for Jane Q Public (MRN 12345) could not be read",
                }
            ],
        },
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "too-costly"}],
        },
    ]
    message = ehr_error("sync", "acme")
    assert "2 items were quarantined" in message
    items = list(QuarantineItem.objects.filter(format="bulk-error").order_by("line"))
    assert [i.line for i in items] == [1, 2]
    assert "error processing MSG_RESOURCE_NOT_ALLOWED" in items[0].reason
    assert "Jane" not in items[0].reason and "12345" not in items[0].reason
    assert "Jane Q Public" in items[0].payload  # kept encrypted for staff
    # Everything else came in, so the checkpoint moves: the errors wait in the quarantine.
    run = ImportRun.objects.get(source=source(), kind="bulk-sync")
    assert run.status == RunStatus.DONE_WITH_QUARANTINE
    assert run.counts["OperationOutcome"]["quarantined"] == 2
    assert source().last_transaction_time is not None


def test_a_listed_file_that_is_gone_fails_the_sync_and_keeps_the_checkpoint(
    loopback: BulkServer, ehr_settings: Path
) -> None:
    loopback.script.missing = {"Procedure.ndjson"}
    message = ehr_error("sync", "acme")
    assert message == (
        "export file 6 (Procedure) is missing at the EHR (404): the export is incomplete"
    )
    assert source().last_transaction_time is None
    assert not SourceRecord.objects.filter(source=source()).exists()
    assert ImportRun.objects.get(source=source()).status == RunStatus.FAILED
    assert loopback.seen("/fhir/status/")[-1].method == "DELETE"
    assert not any((ehr_settings / "work" / "acme").iterdir())


def test_a_broken_download_resumes_with_a_range_request(loopback: BulkServer) -> None:
    loopback.script.cut_once = {"Observation.ndjson": 1000}
    ehr("sync", "acme")
    requests = loopback.seen("/files/Observation.ndjson")
    assert [r.status for r in requests] == [200, 206]
    assert requests[1].headers["range"] == "bytes=1000-"
    assert requests[1].headers["if-range"] == '"v1"'
    run = ImportRun.objects.get(source=source(), kind="bulk-sync")
    assert run.counts["Observation"]["read"] == 36
    assert run.status == RunStatus.DONE


def test_a_broken_download_restarts_when_the_server_ignores_ranges(loopback: BulkServer) -> None:
    loopback.script.cut_once = {"Observation.ndjson": 1000}
    loopback.script.ranges = False
    ehr("sync", "acme")
    assert [r.status for r in loopback.seen("/files/Observation.ndjson")] == [200, 200]
    run = ImportRun.objects.get(source=source(), kind="bulk-sync")
    assert run.counts["Observation"]["read"] == 36
    assert run.status == RunStatus.DONE


def test_an_export_that_never_finishes_is_cancelled_at_the_deadline(
    loopback: BulkServer, settings: Any
) -> None:
    settings.EHR_EXPORT_TIMEOUT_SECONDS = 1
    loopback.script.polls_before_ready = 10_000
    loopback.script.retry_after = "0"
    message = ehr_error("sync", "acme")
    assert message == "the export did not finish in time; it was cancelled at the EHR"
    assert loopback.seen("/fhir/status/")[-1].method == "DELETE"
    assert source().last_transaction_time is None


def test_a_sync_stops_when_the_vendors_baa_has_lapsed(loopback: BulkServer) -> None:
    call_command("vendor", "set-baa", "Acme EHR", "--status", "expired", stdout=io.StringIO())
    message = ehr_error("sync", "acme")
    assert "No active BAA on file for Acme EHR" in message
    assert loopback.seen("/") == []


# --- the nightly sweep ------------------------------------------------------------------------


def test_the_nightly_sweep_syncs_each_source_once_after_its_time(
    loopback: BulkServer, settings: Any
) -> None:
    settings.EHR_SYNC_AT = datetime.time(0, 0)
    assert sweep_now("ehr.sync")
    assert len(loopback.seen("/fhir/Patient/$export")) == 1
    assert source().last_transaction_time is not None
    # Later the same day: already done tonight.
    assert sweep_now("ehr.sync")
    assert len(loopback.seen("/fhir/Patient/$export")) == 1


def test_a_source_is_not_due_before_the_nightly_time(loopback: BulkServer, settings: Any) -> None:
    settings.EHR_SYNC_AT = datetime.time(2, 0)
    settings.PRACTICE_TIME_ZONE = "America/Chicago"
    one_am = datetime.datetime(2026, 11, 20, 7, tzinfo=datetime.UTC)  # 01:00 in Chicago
    three_am = one_am + datetime.timedelta(hours=2)
    assert sources_due(at=one_am, last_sweep=None) == []
    assert sources_due(at=three_am, last_sweep=one_am) == [source()]
    assert sources_due(at=three_am, last_sweep=three_am) == []


# --- against sekmet, a FHIR server nobody here wrote ----------------------------------------------
#
# sekmet (PyPI `sekmet-fhir`) is a SMART Backend Services token server as well as a FHIR
# server with Bulk Data `$export`: careloop registers its public JWKS there as a SMART
# client, exactly as with a production EHR. Its `_since` keeps resources whose
# lastUpdated is at or after the given instant.


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def sekmet(tmp_path: Path, jwks: dict[str, Any]) -> Iterator[str]:
    executable = shutil.which("sekmet", path=os.path.dirname(sys.executable))
    if executable is None:
        pytest.fail("sekmet is not installed: install the dev extras (pip install -e .[dev])")
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    home = tmp_path / "sekmet"
    home.mkdir()
    config = {
        "base_url": f"{root}/fhir",
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(home / "data"),
        "log_inbound": False,
        "validation": {"inbound": "off"},
        "simulator": {"enabled": False, "delay_seconds": 0.2},
        "server_auth": {
            "types": ["smart"],
            "smart_clients": [{"client_id": CLIENT_ID, "jwks": jwks, "scopes": "system/*.*"}],
        },
    }
    (home / "settings.yaml").write_text(json.dumps(config))
    process = subprocess.Popen(
        [executable, "serve", "--config", str(home / "settings.yaml")],
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{root}/fhir/.well-known/smart-configuration").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("sekmet did not start within 30 s")
            time.sleep(0.2)
        yield root
    finally:
        process.terminate()
        process.wait(timeout=10)


def _load(root: str, jwks: dict[str, Any]) -> None:
    """Put the fixture patients into sekmet with one transaction Bundle."""
    entries = []
    for body in fixture_files().values():
        for line in body.splitlines():
            resource = json.loads(line)
            url = f"{resource['resourceType']}/{resource['id']}"
            entries.append({"resource": resource, "request": {"method": "PUT", "url": url}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    key = smart.key_load(jwks["keys"][0]["kid"])
    with httpx.Client(timeout=60) as http:
        token = smart.token_request(
            http,
            key=key,
            client_id=CLIENT_ID,
            token_url=f"{root}/auth/token",
            scope="system/*.write system/*.read",
        )
        response = http.post(
            f"{root}/fhir",
            json=bundle,
            headers={
                "Authorization": f"Bearer {token.value}",
                "Content-Type": "application/fhir+json",
            },
        )
    assert response.status_code == 200, response.text[:300]


def test_a_sync_from_sekmet_brings_its_patients_and_a_second_brings_nothing_new(
    sekmet: str, jwks: dict[str, Any]
) -> None:
    _load(sekmet, jwks)
    ehr(
        "add-source",
        "sekmet",
        "--fhir-base",
        f"{sekmet}/fhir",
        "--token-url",
        f"{sekmet}/auth/token",
        "--client-id",
        CLIENT_ID,
        "--vendor",
        "Acme EHR",
    )

    out = ehr("sync", "sekmet")

    assert f"{resources_in_fixtures()} resources read" in out
    src = Source.objects.get(name="sekmet")
    first = src.last_transaction_time
    assert first is not None
    assert SourceRecord.objects.filter(source=src, resource_type="Patient").count() == 3
    from careloop.clinical.models import ClinicalFact

    assert ClinicalFact.objects.filter(patient__isnull=False).count() > 0

    out = ehr("sync", "sekmet")

    assert "0 resources read" in out
    src.refresh_from_db()
    assert src.last_transaction_time is not None and src.last_transaction_time > first
