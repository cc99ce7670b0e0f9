"""Pulling a FHIR source's data: SMART token, Bulk Data `$export`, import, checkpoint.

`source_sync` is the one entry point (the `careloop ehr sync` command and the nightly
sweep both call it). The order matters for "nothing lost":

1. the vendor's BAA must be in force (careloop.consent.baa);
2. export everything since the last checkpoint (`_since` = the `transactionTime` of
   the last sync that completed), download every output and error file;
3. import the downloaded folder (careloop.ehr.ingest) and quarantine each line of
   the EHR's error files (OperationOutcome NDJSON) with a reason made of codes only;
4. only then move the checkpoint to this export's `transactionTime`.

A failure anywhere before 4 leaves the checkpoint where it was, so the next sync asks
for the same window again; the importer is idempotent, so what did get in the first
time is counted as unchanged. Downloaded files hold PHI in the clear: they live under
`CARELOOP_VAR_DIR/ehr/<source>/<sync id>/` (mode 0700) only while the sync runs.
"""

from __future__ import annotations

import datetime
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
from django.conf import settings
from django.db import transaction

from careloop.consent.baa import NoActiveBaa, baa_require
from careloop.core.clock import now
from careloop.ehr import bulk, ingest, smart
from careloop.ehr.models import ImportRun, RunStatus, Source, SourceKind
from careloop.security.audit import audit_record
from careloop.security.console import console_actor

log = logging.getLogger(__name__)

# The resource types careloop maps (careloop.ehr.facts and careloop.ehr.records).
EXPORT_TYPES: Final = (
    "Patient",
    "RelatedPerson",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "Coverage",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "Immunization",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationStatement",
    "Medication",
    "AllergyIntolerance",
    "DiagnosticReport",
    "ServiceRequest",
    "Appointment",
    "CarePlan",
    "CareTeam",
    "Consent",
)
ERROR_FORMAT: Final = "bulk-error"


class SyncError(Exception):
    """The sync did not complete; one line without PHI. The checkpoint did not move."""


@dataclass(frozen=True)
class SyncOutcome:
    run: ImportRun
    transaction_time: datetime.datetime
    files: int
    errors_quarantined: int


def _audit(source: Source, *, fields: tuple[str, ...], outcome: str = "success") -> None:
    audit_record(
        action="ehr.sync",
        actor_kind="integration",
        actor_id=source.name,
        resource_type="ehr_source",
        resource_id=str(source.pk),
        fields=fields,
        outcome=outcome,
    )


def _transport(http: httpx.Client, source: Source) -> bulk.Transport:
    key = smart.key_load(source.key_id)

    def token() -> smart.AccessToken:
        return smart.token_request(
            http,
            key=key,
            client_id=source.client_id,
            token_url=source.token_url,
            scope=settings.EHR_SYNC_SCOPE,
        )

    return bulk.Transport(http=http, token_source=token, backoff=settings.EHR_RETRY_SECONDS)


def _since(source: Source, since: datetime.datetime | None, full: bool) -> datetime.datetime | None:
    if full:
        return None
    return since if since is not None else source.last_transaction_time


def _error_reason(raw: bytes) -> tuple[str, str]:
    """(resource type, reason) for one line of an error file: codes only, because an
    EHR's diagnostics text may quote the patient's data."""
    try:
        outcome = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "", "export error line: not JSON"
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return "", "export error line: not an OperationOutcome"
    codes = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        words = [str(issue.get("severity") or "?"), str(issue.get("code") or "?")]
        details = issue.get("details")
        coding = details.get("coding") if isinstance(details, dict) else None
        words += [str(c.get("code")) for c in coding or [] if isinstance(c, dict)]
        codes.append(" ".join(w[:40] for w in words))
    summary = "; ".join(codes) or "no issue"
    return "OperationOutcome", f"the EHR reported an export error: {summary}"[:300]


def _quarantine_errors(source: Source, run: ImportRun | None, paths: list[Path]) -> int:
    """One quarantine item per line of the EHR's error files; how many."""
    added = 0
    for path in paths:
        with path.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                if not raw.strip():
                    continue
                resource_type, reason = _error_reason(raw)
                ingest.quarantine_add(
                    source=source,
                    run=run,
                    format=ERROR_FORMAT,
                    origin=f"{path.parent.parent.name}/{path.name}",
                    line=number,
                    resource_type=resource_type,
                    reason=reason,
                    payload=raw.decode("utf-8", "replace"),
                )
                added += 1
    return added


def _with_errors(run: ImportRun, errors: int) -> None:
    """Count the EHR's error lines in the run, which then has quarantined items."""
    counts: dict[str, Any] = dict(run.counts)
    entry = dict.fromkeys(ingest.COUNT_KEYS, 0)
    entry.update(read=errors, quarantined=errors)
    counts["OperationOutcome"] = entry
    run.counts = counts
    if run.status == RunStatus.DONE:
        run.status = RunStatus.DONE_WITH_QUARANTINE
    run.save(update_fields=["counts", "status"])


@transaction.atomic
def _checkpoint(source: Source, run: ImportRun, at: datetime.datetime, errors: int) -> None:
    if errors:
        _with_errors(run, errors)
    source.last_transaction_time = at
    source.save(update_fields=["last_transaction_time"])
    totals = {t: c.get("read", 0) for t, c in sorted(run.counts.items())}
    _audit(source, fields=("finish", *(f"{t}:{n}" for t, n in totals.items())))


@transaction.atomic
def _record_failure(source: Source, reason: str) -> ImportRun:
    at = now()
    run = ImportRun.objects.create(
        source=source,
        kind="bulk-sync",
        started_at=at,
        finished_at=at,
        status=RunStatus.FAILED,
        error=reason[:300],
    )
    _audit(source, fields=("finish", "failed"), outcome="failure")
    return run


def _download(
    http: httpx.Client,
    source: Source,
    folder: Path,
    since: datetime.datetime | None,
    progress: Callable[[str], None],
) -> tuple[bulk.Manifest, list[Path]]:
    """Run the export and download it into `folder`; the manifest and the error files."""
    transport = _transport(http, source)
    status_url = bulk.export_kickoff(
        transport,
        fhir_base=source.fhir_base,
        group_id=source.group_id,
        types=EXPORT_TYPES,
        since=since,
    )
    progress("export started")
    deadline = time.monotonic() + settings.EHR_EXPORT_TIMEOUT_SECONDS
    manifest = bulk.export_wait(
        transport,
        status_url,
        deadline=deadline,
        poll=settings.EHR_POLL_SECONDS,
        progress=lambda text: progress(f"export: {text}"),
    )
    progress(f"downloading {len(manifest.output)} files")
    threads = settings.EHR_DOWNLOAD_THREADS
    auth = manifest.requires_token
    try:
        paths = bulk.download_all(transport, manifest.output, folder, auth=auth, threads=threads)
        errors = bulk.download_all(
            transport, manifest.error, folder / "errors", auth=auth, threads=threads, kind="error-"
        )
    finally:
        # Tells the EHR it may delete the files, whether or not they all came.
        bulk.export_cancel(transport, status_url)
    request = f"{source.fhir_base.rstrip('/')}/$export"
    bulk.write_json(
        folder / "manifest.json", bulk.local_manifest(manifest, manifest.output, paths, request)
    )
    return manifest, errors


def sync_folder(source: Source) -> Path:
    folder = Path(settings.EHR_WORK_DIR) / source.name / uuid.uuid4().hex
    folder.mkdir(parents=True, mode=0o700)
    return folder


def source_sync(
    *,
    source: Source,
    since: datetime.datetime | None = None,
    full: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> SyncOutcome:
    """Export, download and import everything the source changed since its checkpoint
    (or since `since`, or everything with `full`), then move the checkpoint. Raises
    `SyncError` with one line, and records a failed run, when anything fails."""
    if source.kind != SourceKind.FHIR:
        raise SyncError(f"source {source.name} is not a FHIR server")
    try:
        baa_require(vendor_name=source.vendor.name if source.vendor else "(none)", at=now())
    except NoActiveBaa as error:
        _record_failure(source, str(error))
        raise SyncError(str(error)) from None
    window = _since(source, since, full)
    _audit(source, fields=("start", "since" if window else "full"))
    folder = sync_folder(source)
    try:
        with httpx.Client(timeout=httpx.Timeout(60.0, connect=15.0)) as http:
            manifest, errors = _download(http, source, folder, window, progress)
        progress("importing")
        run = ingest.import_paths([folder], source_name=source.name, kind="bulk-sync")
        quarantined = _quarantine_errors(source, run, errors)
        if run.status == RunStatus.FAILED:
            raise SyncError(f"the import failed ({run.error or 'see the run'})")
        _checkpoint(source, run, manifest.transaction_time, quarantined)
    except (bulk.BulkError, smart.SmartError, ingest.ImportFailed, SyncError) as error:
        _record_failure(source, str(error))
        raise SyncError(str(error)) from None
    except Exception as error:
        # An unexpected failure (a bug, the database): recorded by class only, since
        # its message may hold values from the data; the traceback goes to the log.
        log.exception("sync of source %s failed", source.name)
        _record_failure(source, f"unexpected {type(error).__name__}")
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return SyncOutcome(
        run=run,
        transaction_time=manifest.transaction_time,
        files=len(manifest.output),
        errors_quarantined=quarantined,
    )


def sources_due(*, at: datetime.datetime, last_sweep: datetime.datetime | None) -> list[Source]:
    """The FHIR sources whose nightly sync is due: today's sync time (practice time zone)
    has passed since the sweep last finished."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(settings.PRACTICE_TIME_ZONE)
    local = at.astimezone(zone)
    slot = datetime.datetime.combine(local.date(), settings.EHR_SYNC_AT, tzinfo=zone)
    if at < slot or (last_sweep is not None and last_sweep >= slot):
        return []
    return list(Source.objects.filter(kind=SourceKind.FHIR, active=True))


class SourceError(ValueError):
    """A source that cannot be registered; the message says what to fix."""


def _check_url(label: str, url: str) -> str:
    parts = httpx.URL(url)
    # PHI travels over these URLs: TLS, except to this host (tests, an SSH tunnel).
    loopback = parts.host in {"127.0.0.1", "localhost", "::1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise SourceError(f"{label} must be an https:// URL")
    return url.rstrip("/") if label == "--fhir-base" else url


@transaction.atomic
def source_add(
    *,
    name: str,
    fhir_base: str,
    token_url: str,
    client_id: str,
    group_id: str,
    vendor_name: str,
    key_id: str,
) -> Source:
    """Register a FHIR server to pull from; its vendor's BAA must be in force."""
    try:
        vendor = baa_require(vendor_name=vendor_name, at=now())
    except NoActiveBaa as error:
        raise SourceError(str(error)) from None
    if Source.objects.filter(name=name).exists():
        raise SourceError(f"a source named {name!r} already exists")
    smart.key_load(key_id)
    source = Source.objects.create(
        name=name,
        kind=SourceKind.FHIR,
        vendor=vendor,
        fhir_base=_check_url("--fhir-base", fhir_base),
        token_url=_check_url("--token-url", token_url),
        client_id=client_id,
        group_id=group_id,
        key_id=key_id,
        created_at=now(),
    )
    audit_record(
        action="ehr.source_change",
        actor=console_actor(),
        resource_type="ehr_source",
        resource_id=str(source.pk),
        fields=("name", "fhir_base", "token_url", "client_id", "group_id", "vendor", "key_id"),
    )
    return source
