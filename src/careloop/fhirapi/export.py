"""Bulk Data `$export` on careloop's own server: kick-off, the run, status, cancel, files.

The job row is the durable state (careloop.fhirapi.models.ExportJob). Kick-off writes
it and nudges a task on commit; the worker (or the export sweep, for a lost task or a
dead worker whose lease expired) claims it with a conditional UPDATE and writes one
NDJSON file per type under `VAR_DIR/fhir-export/<job id>/`. A deployment with several
hosts must put VAR_DIR on storage every web host can read (docs/fhir-api.md).
Resources are written as the client's role may read them, the same as a search.
"""

from __future__ import annotations

import datetime
import shutil
import uuid
from pathlib import Path
from typing import Any, Final

import orjson
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import Q, QuerySet

from careloop.core import clock
from careloop.fhirapi.auth import Caller
from careloop.fhirapi.models import ExportJob, ExportStatus
from careloop.fhirapi.outcome import bad_request, not_found
from careloop.fhirapi.params import _DATE, _bounds
from careloop.fhirapi.registry import REGISTRY, Provider
from careloop.fhirapi.scopes import READ, SEARCH
from careloop.patients.models import Patient
from careloop.scheduling.models import Location
from careloop.scheduling.models import Provider as CareProvider
from careloop.security.audit import audit_record
from careloop.security.models import AuditEvent, Role
from careloop.security.permissions import Op, Resource, allowed

LEASE: Final = datetime.timedelta(minutes=15)
RETENTION: Final = datetime.timedelta(days=1)
CHUNK: Final = 2000
OUTPUT_FORMATS: Final = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
GROUP_KINDS: Final = {"location": "home_location_id", "provider": "primary_provider_id"}


def export_dir(job_id: uuid.UUID) -> Path:
    """Where a job's files go: `settings.FHIR_EXPORT_DIR`, by default VAR_DIR/fhir-export."""
    root = getattr(settings, "FHIR_EXPORT_DIR", None) or Path(settings.VAR_DIR) / "fhir-export"
    return Path(root) / str(job_id)


def exportable_types() -> list[str]:
    return [name for name, provider in REGISTRY.items() if provider.exportable]


# --- kick-off -----------------------------------------------------------------------------


def group_patients(group: str) -> Q:
    """The patients of a Group: `location-<uuid>` (home location) or `provider-<uuid>`
    (primary provider); 404 for any other id. See docs/decisions.md."""
    kind, _, ident = group.partition("-")
    column = GROUP_KINDS.get(kind)
    try:
        key = uuid.UUID(ident)
    except ValueError:
        raise not_found() from None
    model = Location if kind == "location" else CareProvider
    if column is None or not model.objects.filter(pk=key).exists():
        raise not_found()
    return Q(**{column: key})


def _since(raw: str) -> datetime.datetime | None:
    if not raw:
        return None
    match = _DATE.match(raw)
    if match is None or match["prefix"]:
        raise bad_request("_since takes a FHIR instant, e.g. 2024-01-31T00:00:00Z")
    try:
        return _bounds(match)[0]
    except ValueError:
        raise bad_request("_since names an impossible time") from None


def _types(caller: Caller, raw: str) -> list[str]:
    """The types to export: those asked for (each must be allowed), or all allowed."""
    known = exportable_types()
    if raw:
        wanted = [name.strip() for name in raw.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise bad_request(f"_type may name only {', '.join(known)}")
        for name in wanted:
            caller.require(REGISTRY[name], READ)
        return wanted
    return [name for name in known if _may_export(caller, REGISTRY[name])]


def _may_export(caller: Caller, provider: Provider) -> bool:
    from careloop.fhirapi.scopes import permits

    return permits(caller.scopes, provider.type, READ) and allowed(
        caller.client.role, Op.READ, provider.resource
    )


def export_start(*, caller: Caller, group: str, params: dict[str, str], url: str) -> ExportJob:
    """Validate a kick-off, write the job and nudge the worker; audited `fhir.export`."""
    output_format = params.get("_outputFormat", "")
    if output_format and output_format not in OUTPUT_FORMATS:
        raise bad_request("_outputFormat must be application/fhir+ndjson")
    if params.get("_typeFilter") or params.get("_elements"):
        raise bad_request("_typeFilter and _elements are not supported")
    caller.require(REGISTRY["Patient"], SEARCH)
    if group:
        group_patients(group)
    types = _types(caller, params.get("_type", ""))
    since = _since(params.get("_since", ""))
    with transaction.atomic():
        at = clock.now()
        job = ExportJob.objects.create(
            client=caller.client,
            group=group,
            types=types,
            since=since,
            request_url=url[:500],
            transaction_time=at,
            created_at=at,
        )
        caller.audit("fhir.export", resource_type="Bulk", resource_id=str(job.pk), fields=types)
        transaction.on_commit(lambda: _nudge(job.pk))
    return job


def _nudge(job_id: uuid.UUID) -> None:
    from careloop.fhirapi.tasks import fhir_export_nudge

    fhir_export_nudge.enqueue(str(job_id))


# --- the run ------------------------------------------------------------------------------


def _claim(job_id: uuid.UUID) -> bool:
    at = clock.now()
    due = Q(status=ExportStatus.QUEUED) | Q(status=ExportStatus.RUNNING, lease_until__lt=at)
    claimed = ExportJob.objects.filter(due, pk=job_id).update(
        status=ExportStatus.RUNNING, lease_until=at + LEASE
    )
    return claimed == 1


def _rows(job: ExportJob, provider: Provider) -> QuerySet[Any]:
    patients = Patient.objects.filter(merged_into__isnull=True)
    if job.group and job.group != "Patient":
        patients = patients.filter(group_patients(job.group))
    assert provider.patient_column is not None  # noqa: S101 - exportable types have one
    column = "pk" if provider.type == "Patient" else provider.patient_column
    rows = provider.rows().filter(**{f"{column}__in": patients.values("pk")})
    if job.since is not None and provider.updated_column is not None:
        rows = rows.filter(**{f"{provider.updated_column}__gt": job.since})
    return rows.order_by("pk")


def _still_running(job: ExportJob) -> bool:
    return ExportJob.objects.filter(pk=job.pk, status=ExportStatus.RUNNING).exists()


def _readable(role: str) -> frozenset[Resource]:
    return frozenset(r for r in Resource if allowed(role, Op.READ, r))


def export_run(*, job_id: uuid.UUID) -> bool:
    """Run a queued (or abandoned) export to completion; False if there was nothing to do."""
    if not _claim(job_id):
        return False
    job = ExportJob.objects.select_related("client").get(pk=job_id)
    folder = export_dir(job.pk)
    folder.mkdir(parents=True, exist_ok=True)
    readable = _readable(job.client.role) if job.client.role in Role.values else frozenset()
    files: list[dict[str, Any]] = []
    for number, name in enumerate(job.types, start=1):
        provider = REGISTRY[name]
        count = _write(folder / f"{name}.ndjson", _rows(job, provider), provider, readable)
        files.append({"type": name, "name": f"{name}.ndjson", "count": count})
        progress = f"{number} of {len(job.types)} types written"
        updated = ExportJob.objects.filter(pk=job.pk, status=ExportStatus.RUNNING).update(
            progress=progress, lease_until=clock.now() + LEASE
        )
        if not updated:  # cancelled meanwhile
            shutil.rmtree(folder, ignore_errors=True)
            return True
    with transaction.atomic():
        done = ExportJob.objects.filter(pk=job.pk, status=ExportStatus.RUNNING).update(
            status=ExportStatus.COMPLETE,
            files=files,
            finished_at=clock.now(),
            lease_until=None,
            progress="complete",
        )
        if done:
            audit_record(
                action="fhir.export",
                actor=AnonymousUser(),
                actor_kind=AuditEvent.ActorKind.INTEGRATION,
                actor_id=job.client.client_id,
                resource_type="Bulk",
                resource_id=str(job.pk),
                fields=[f"{item['type']}={item['count']}" for item in files],
            )
    if not done:
        shutil.rmtree(folder, ignore_errors=True)
    return True


def _write(
    path: Path, rows: QuerySet[Any], provider: Provider, readable: frozenset[Resource]
) -> int:
    count = 0
    dumps = orjson.dumps
    with path.open("wb") as out:
        for row in rows.iterator(chunk_size=CHUNK):
            out.write(dumps(provider.serialize(row, readable)) + b"\n")
            count += 1
    return count


def exports_due(*, limit: int = 5) -> int:
    """Run queued exports and those whose worker's lease expired (the export sweep)."""
    at = clock.now()
    due = ExportJob.objects.filter(
        Q(status=ExportStatus.QUEUED) | Q(status=ExportStatus.RUNNING, lease_until__lt=at)
    ).values_list("pk", flat=True)[:limit]
    return sum(export_run(job_id=job_id) for job_id in list(due))


def exports_prune() -> int:
    """Delete the files (and rows) of exports finished more than `RETENTION` ago."""
    old = ExportJob.objects.filter(finished_at__lt=clock.now() - RETENTION)
    for job_id in old.values_list("pk", flat=True):
        shutil.rmtree(export_dir(job_id), ignore_errors=True)
    return old.delete()[0]


# --- status, cancel, files -------------------------------------------------------------------


def export_get(*, caller: Caller, job_id: uuid.UUID) -> ExportJob:
    """The caller's own export; 404 for another client's, as for a missing one."""
    job = ExportJob.objects.filter(pk=job_id, client=caller.client).first()
    if job is None or job.status == ExportStatus.CANCELLED:
        raise not_found()
    return job


def export_cancel(*, caller: Caller, job_id: uuid.UUID) -> None:
    job = export_get(caller=caller, job_id=job_id)
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.CANCELLED, lease_until=None)
    if job.status == ExportStatus.COMPLETE:
        shutil.rmtree(export_dir(job.pk), ignore_errors=True)
    caller.audit("fhir.export", resource_type="Bulk", resource_id=str(job.pk), fields=("cancel",))


def export_file(*, caller: Caller, job_id: uuid.UUID, name: str) -> Path:
    job = export_get(caller=caller, job_id=job_id)
    item = next((item for item in job.files if item["name"] == name), None)
    if job.status != ExportStatus.COMPLETE or item is None:
        raise not_found()
    caller.audit(
        "fhir.export", resource_type="Bulk", resource_id=f"{job.pk}/{name}", fields=("download",)
    )
    return export_dir(job.pk) / name
