"""The FHIR import pipeline: files in, careloop rows out, fast, idempotent, nothing lost.

    read (careloop.ehr.reader) -> parse -> identify -> batch -> compare -> write

- **Identify**: every resource is (source, type, id) with its versionId, lastUpdated
  and a content hash. A batch is compared with what careloop already holds in a few
  set queries: new resources are written, newer ones replace the old, unchanged and
  older ones are counted and left alone. Importing the same files twice writes
  nothing the second time.
- **Write**: clinical resources become clinical-fact rows (careloop.ehr.facts) through
  COPY (PostgreSQL) or executemany (SQLite), one transaction per batch; the rest go to
  their record handlers (careloop.ehr.records: patients, coverage, appointments...).
- **References**: a fact names its patient by the source's id. It is resolved from the
  patients the source has sent; facts that arrive before their Patient are resolved at
  the end of the run, set-based, and records that need their patient wait in the
  quarantine (`waiting_for`) until a later batch or run brings it.
- **Quarantine**: a line that is not JSON, not FHIR, of a type its file does not hold,
  without a usable id, or that a mapper rejects goes to `QuarantineItem` with its file,
  line and a reason without PHI; the rest of the file carries on.

One `ImportRun` records the counts per type: read, created, updated, unchanged,
older (an older version than careloop's, ignored), quarantined, waiting and skipped
(types careloop does not use).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.db import transaction
from django.db.models import OuterRef, Subquery

from careloop.caregaps.evaluate import caregaps_refresh
from careloop.clinical.models import ClinicalFact
from careloop.core import bulk
from careloop.core.bulk import model_field
from careloop.core.clock import now
from careloop.ehr import fhir_values as fv
from careloop.ehr import reader
from careloop.ehr.facts import FACT_MAPPERS, FactResource, MedicationIndex, concept_codes, when
from careloop.ehr.handlers import (
    RECORD_HANDLERS,
    RecordContext,
    RecordResult,
    Reject,
    WaitForPatient,
)
from careloop.ehr.models import (
    ImportRun,
    QuarantineItem,
    QuarantineStatus,
    RunStatus,
    Source,
    SourceKind,
    SourceRecord,
)
from careloop.ehr.records_bulk import RunCache, appointments_new, coverages_new, patients_new
from careloop.security.audit import audit_record

log = logging.getLogger(__name__)

BATCH_RESOURCES = 10_000
LOOKUP_CHUNK = 10_000
PATIENT_CACHE_MAX = 200_000
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
COUNT_KEYS = (
    "read",
    "created",
    "updated",
    "unchanged",
    "older",
    "quarantined",
    "waiting",
    "skipped",
)
# Known resources that careloop reads for reference only (a Medication gives a request
# its drug code) or does not keep: counted as skipped, never quarantined.
REFERENCE_ONLY = frozenset({"Medication"})

# Record types with a fast path for resources new to careloop (careloop.ehr.records_bulk).
BULK_CREATORS = {
    "Patient": patients_new,
    "Coverage": coverages_new,
    "Appointment": appointments_new,
}

SOURCE_RECORD_FIELDS = (
    "source",
    "resource_type",
    "resource_id",
    "version_id",
    "last_updated",
    "content_hash",
    "target_id",
    "patient",
    "subject_ref",
    "codes",
    "created_at",
    "updated_at",
)
FACT_FIELDS = (
    "patient",
    "kind",
    "system",
    "code",
    "display",
    "status",
    "category",
    "effective_start",
    "effective_end",
    "value_num",
    "value_code",
    "unit",
    "source_system",
    "source_id",
    "source_version",
    "resource_type",
    "part",
    "element",
    "subject_ref",
    "source_updated",
    "content_hash",
    "recorded_at",
    "negated",
    "intent",
    "value_system",
    "encounter_ref",
)


def handled(resource_type: str) -> bool:
    """Does careloop keep (or read for reference) resources of this type?"""
    return (
        resource_type in FACT_MAPPERS
        or resource_type in RECORD_HANDLERS
        or resource_type in REFERENCE_ONLY
    )


class ImportFailed(Exception):
    """The import could not run at all (bad path, unknown source); safe to show."""


@dataclass(slots=True)
class Incoming:
    """One identified resource in the current batch."""

    origin: str
    line: int | None
    resource_type: str
    resource_id: str
    version: str
    updated: datetime.datetime | None
    digest: int
    resource: dict[str, Any]
    raw: bytes | None


@dataclass(frozen=True, slots=True)
class Held:
    """What careloop holds of a resource: enough to compare versions and update it."""

    pk: int
    version_id: str
    last_updated: datetime.datetime | None
    content_hash: int
    target_id: uuid.UUID | None


@dataclass(slots=True)
class Summary:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, resource_type: str, key: str, n: int = 1) -> None:
        per_type = self.counts.get(resource_type)
        if per_type is None:
            per_type = self.counts[resource_type] = dict.fromkeys(COUNT_KEYS, 0)
        per_type[key] += n

    def total(self, key: str) -> int:
        return sum(c[key] for c in self.counts.values())


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def _newer(
    incoming: Incoming, old_version: str, old_updated: datetime.datetime | None, old_digest: int
) -> str:
    """'newer', 'same' or 'older': how an incoming resource compares with the held one."""
    if incoming.updated is not None and old_updated is not None and incoming.updated != old_updated:
        return "newer" if incoming.updated > old_updated else "older"
    if (
        incoming.version
        and old_version
        and incoming.version != old_version
        and incoming.version.isdigit()
        and old_version.isdigit()
    ):
        return "newer" if int(incoming.version) > int(old_version) else "older"
    if incoming.digest == old_digest:
        return "same"
    return "newer"


def _chunks(values: Sequence[str], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def source_for(name: str) -> Source:
    """The named source; a files source is made on first use."""
    source = Source.objects.filter(name=name).first()
    if source is not None:
        return source
    if not re.fullmatch(r"[-a-zA-Z0-9_]{1,60}", name):
        raise ImportFailed(f"source name {name!r} must be letters, digits, - and _ (at most 60)")
    source, _ = Source.objects.get_or_create(
        name=name, defaults={"kind": SourceKind.FILES, "created_at": now()}
    )
    return source


def quarantine_add(
    *,
    source: Source,
    run: ImportRun | None,
    format: str,  # noqa: A002 - the column's name
    origin: str,
    line: int | None,
    resource_type: str,
    reason: str,
    payload: str,
    waiting_for: str = "",
) -> QuarantineItem:
    """Park an item that could not be taken in (PHI only in the encrypted payload)."""
    return QuarantineItem.objects.create(
        source=source,
        run=run,
        format=format,
        origin=origin[:300],
        line=line,
        resource_type=resource_type[:32],
        reason=reason[:300],
        payload=payload,
        waiting_for=waiting_for[:80],
        created_at=now(),
    )


class Importer:
    """Feeds items through the pipeline in batches; `finish` resolves and closes the run."""

    def __init__(
        self,
        *,
        source: Source,
        run: ImportRun,
        progress: Callable[[int], None] | None = None,
        batch_size: int = BATCH_RESOURCES,
    ) -> None:
        self.source = source
        self.run = run
        self.summary = Summary()
        self.progress = progress
        self.batch_size = batch_size
        self.batch: list[Incoming] = []
        self.medications = MedicationIndex(self._stored_medication)
        self.patients: dict[str, uuid.UUID] = {}
        self.targets: dict[tuple[str, str], uuid.UUID | None] = {}
        # Patients whose data this run changed: their care gaps are re-evaluated at the end.
        self.touched: set[uuid.UUID] = set()
        self.new_records = bulk.Rows(SourceRecord, SOURCE_RECORD_FIELDS)
        self.run_cache = RunCache()
        self.adapters = bulk.adapters()
        self.fact_columns = [model_field(ClinicalFact, name).column for name in FACT_FIELDS]
        self.context = RecordContext(
            source=source, run=run, patient_for=self.patient_for, target_for=self.target_for
        )

    # --- intake -----------------------------------------------------------------

    def skip_file(self, file: reader.InputFile) -> None:
        """A whole file of a type careloop does not use: counted, not parsed."""
        lines = sum(1 for item in reader.read_file(file) if not item.problem)
        self.summary.add(file.resource_type, "read", lines)
        self.summary.add(file.resource_type, "skipped", lines)
        if self.progress is not None:
            self.progress(lines)

    def feed(self, item: reader.Item, expected_type: str = "") -> None:
        incoming = self._identify(item, expected_type)
        if incoming is None:
            return
        self.summary.add(incoming.resource_type, "read")
        self.batch.append(incoming)
        if len(self.batch) >= self.batch_size:
            self.flush()

    def _quarantine_item(self, item: reader.Item, resource_type: str, reason: str) -> None:
        if item.raw is not None:
            payload = item.raw.decode("utf-8", errors="replace").rstrip("\n")
        elif item.resource is not None:
            payload = orjson.dumps(item.resource).decode()
        else:
            payload = ""
        self.summary.add(resource_type or "(unreadable)", "read")
        self.summary.add(resource_type or "(unreadable)", "quarantined")
        quarantine_add(
            source=self.source,
            run=self.run,
            format="fhir-ndjson" if item.raw is not None else "fhir-json",
            origin=item.origin,
            line=item.line,
            resource_type=resource_type,
            reason=reason,
            payload=payload,
        )

    def _identify(self, item: reader.Item, expected_type: str) -> Incoming | None:
        if item.problem:
            self._quarantine_item(item, expected_type, item.problem)
            return None
        resource = item.resource
        raw = item.raw
        if resource is None:
            assert raw is not None  # noqa: S101 - an Item holds raw bytes or a resource
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self._quarantine_item(item, expected_type, "not JSON")
                return None
            if not isinstance(parsed, dict):
                self._quarantine_item(item, expected_type, "not a FHIR resource (not an object)")
                return None
            resource = parsed
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            self._quarantine_item(item, expected_type, "not a FHIR resource (no resourceType)")
            return None
        if expected_type and rtype != expected_type:
            self._quarantine_item(item, rtype, f"a {rtype} in a file of {expected_type}")
            return None
        rid = resource.get("id")
        if not isinstance(rid, str) or not _FHIR_ID.fullmatch(rid):
            self._quarantine_item(item, rtype, f"{rtype}: id missing or not a FHIR id")
            return None
        meta = resource.get("meta")
        version, updated = "", None
        if isinstance(meta, dict):
            v = meta.get("versionId")
            version = v[:64] if isinstance(v, str) else ""
            try:
                updated = when(meta.get("lastUpdated"), f"{rtype}.meta.lastUpdated")
            except Reject as rejected:
                self._quarantine_item(item, rtype, str(rejected))
                return None
        digest = _digest(
            raw.strip() if raw is not None else orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        )
        return Incoming(
            origin=item.origin,
            line=item.line,
            resource_type=rtype,
            resource_id=rid,
            version=version,
            updated=updated,
            digest=digest,
            resource=resource,
            raw=raw,
        )

    # --- references -------------------------------------------------------------

    def patient_for(self, source_patient_id: str) -> uuid.UUID | None:
        found = self.patients.get(source_patient_id)
        if found is None:
            self._load_patients([source_patient_id])
            found = self.patients.get(source_patient_id)
        return found

    def _load_patients(self, ids: Iterable[str]) -> None:
        wanted = sorted({i for i in ids if i not in self.patients})
        if len(self.patients) + len(wanted) > PATIENT_CACHE_MAX:
            self.patients.clear()
        for chunk in _chunks(wanted):
            rows = SourceRecord.objects.filter(
                source=self.source,
                resource_type="Patient",
                resource_id__anyof=chunk,
                patient__isnull=False,
            ).values_list("resource_id", "patient_id", "patient__merged_into_id")
            # A merged record hands over to the one it was merged into.
            self.patients.update((rid, merged or pid) for rid, pid, merged in rows)

    def target_for(self, resource_type: str, resource_id: str) -> uuid.UUID | None:
        key = (resource_type, resource_id)
        if key not in self.targets:
            if len(self.targets) > PATIENT_CACHE_MAX:
                self.targets.clear()
            self.targets[key] = (
                SourceRecord.objects.filter(
                    source=self.source, resource_type=resource_type, resource_id=resource_id
                )
                .values_list("target_id", flat=True)
                .first()
            )
        return self.targets[key]

    # --- batches ----------------------------------------------------------------

    def flush(self) -> None:
        batch, self.batch = self.batch, []
        if not batch:
            return
        # The last version of a resource within the batch is the one that counts.
        latest: dict[tuple[str, str], Incoming] = {}
        for incoming in batch:
            key = (incoming.resource_type, incoming.resource_id)
            held = latest.get(key)
            if held is not None:
                verdict = _newer(incoming, held.version, held.updated, held.digest)
                if verdict != "newer":
                    self.summary.add(
                        incoming.resource_type, "unchanged" if verdict == "same" else "older"
                    )
                    continue
                self.summary.add(held.resource_type, "unchanged")
            latest[key] = incoming
        by_type: dict[str, list[Incoming]] = defaultdict(list)
        for incoming in latest.values():
            by_type[incoming.resource_type].append(incoming)
        with transaction.atomic():
            for rtype in sorted(by_type, key=reader.type_rank):
                items = by_type[rtype]
                if rtype in REFERENCE_ONLY:
                    self._write_references(rtype, items)
                elif rtype in RECORD_HANDLERS:
                    self._write_records(rtype, items)
                elif rtype in FACT_MAPPERS:
                    self._write_facts(rtype, items)
                else:
                    self.summary.add(rtype, "skipped", len(items))
        if self.progress is not None:
            self.progress(len(batch))

    def _stored_medication(self, resource_id: str) -> list[list[str]] | None:
        return (
            SourceRecord.objects.filter(
                source=self.source, resource_type="Medication", resource_id=resource_id
            )
            .values_list("codes", flat=True)
            .first()
        )

    def _write_references(self, rtype: str, items: list[Incoming]) -> None:
        """Medications: remembered with their codes, for the requests that name them."""
        existing = self._existing_records(rtype, items)
        stamp = now()
        for incoming in items:
            self.medications.remember(incoming.resource)
            held = existing.get(incoming.resource_id)
            if held is not None:
                verdict = _newer(incoming, held.version_id, held.last_updated, held.content_hash)
                if verdict != "newer":
                    self.summary.add(rtype, "unchanged" if verdict == "same" else "older")
                    continue
            codes = concept_codes(incoming.resource.get("code"))
            self._remember(incoming, held, RecordResult(target_id=None), stamp, codes=codes)
        self._flush_new_records()

    def _existing_records(self, rtype: str, items: list[Incoming]) -> dict[str, Held]:
        existing: dict[str, Held] = {}
        ids = [i.resource_id for i in items]
        for chunk in _chunks(ids):
            rows = SourceRecord.objects.filter(
                source=self.source, resource_type=rtype, resource_id__anyof=chunk
            ).values_list(
                "resource_id", "pk", "version_id", "last_updated", "content_hash", "target_id"
            )
            for rid, pk, version, updated, digest, target in rows:
                existing[rid] = Held(pk, version, updated, digest, target)
        return existing

    def _write_facts(self, rtype: str, items: list[Incoming]) -> None:
        existing: dict[str, tuple[str, datetime.datetime | None, int]] = {}
        ids = [i.resource_id for i in items]
        for chunk in _chunks(ids):
            rows = ClinicalFact.objects.filter(
                source_system=self.source.name, resource_type=rtype, part=0, source_id__anyof=chunk
            ).values_list("source_id", "source_version", "source_updated", "content_hash")
            for sid, version, updated, digest in rows:
                existing[sid] = (version, updated, digest or 0)
        mapper = FACT_MAPPERS[rtype]
        mapped: list[tuple[Incoming, FactResource]] = []
        replaced: list[str] = []
        for incoming in items:
            held = existing.get(incoming.resource_id)
            if held is not None:
                verdict = _newer(incoming, *held)
                if verdict != "newer":
                    self.summary.add(rtype, "unchanged" if verdict == "same" else "older")
                    continue
            try:
                fact = mapper(incoming.resource, self.medications)
            except Reject as rejected:
                self._quarantine_incoming(incoming, str(rejected))
                continue
            if held is not None:
                replaced.append(incoming.resource_id)
                self.summary.add(rtype, "updated")
            else:
                self.summary.add(rtype, "created")
            mapped.append((incoming, fact))
        for chunk in _chunks(replaced):
            ClinicalFact.objects.filter(
                source_system=self.source.name, resource_type=rtype, source_id__anyof=chunk
            ).delete()
        self._load_patients(fact.subject for _incoming, fact in mapped)
        bulk.insert_rows(
            ClinicalFact._meta.db_table, self.fact_columns, list(self._fact_rows(rtype, mapped))
        )

    def _fact_rows(
        self, rtype: str, mapped: list[tuple[Incoming, FactResource]]
    ) -> Iterator[tuple[Any, ...]]:
        a = self.adapters
        source_name = self.source.name
        for incoming, fact in mapped:
            patient_id = self.patients.get(fact.subject)
            if patient_id is not None:
                self.touched.add(patient_id)
            patient = a.uid(patient_id)
            start, end, recorded = a.dt(fact.start), a.dt(fact.end), a.dt(fact.recorded)
            updated = a.dt(incoming.updated)
            encounter = fv.reference_id(incoming.resource.get("encounter"), "Encounter") or ""
            for number, part in enumerate(fact.parts):
                first = number == 0
                yield (
                    patient,
                    fact.kind,
                    part.system,
                    part.code,
                    part.display,
                    fact.status,
                    fact.category,
                    start,
                    end,
                    part.value_num,
                    part.value_code,
                    part.unit,
                    source_name,
                    incoming.resource_id,
                    incoming.version,
                    rtype,
                    number,
                    part.element,
                    fact.subject,
                    updated if first else None,
                    incoming.digest if first else None,
                    recorded,
                    fact.negated,
                    fact.intent,
                    part.value_system,
                    encounter[:64],
                )

    def _write_records(self, rtype: str, items: list[Incoming]) -> None:
        existing = self._existing_records(rtype, items)
        handler = RECORD_HANDLERS[rtype]
        bulk_creator = BULK_CREATORS.get(rtype)
        stamp = now()
        fresh: list[Incoming] = []
        for incoming in items:
            held = existing.get(incoming.resource_id)
            if held is None and bulk_creator is not None:
                fresh.append(incoming)
                continue
            if held is not None:
                verdict = _newer(incoming, held.version_id, held.last_updated, held.content_hash)
                if verdict != "newer":
                    self.summary.add(rtype, "unchanged" if verdict == "same" else "older")
                    continue
            try:
                with transaction.atomic():
                    result = handler(
                        self.context, incoming.resource, held.target_id if held else None
                    )
            except (WaitForPatient, Reject) as refused:
                self._refused(incoming, refused)
                continue
            self._remember(incoming, held, result, stamp)
        if fresh:
            assert bulk_creator is not None  # noqa: S101 - fresh is only filled with one
            outcomes = bulk_creator(self.context, [i.resource for i in fresh], self.run_cache)
            for incoming, outcome in zip(fresh, outcomes, strict=True):
                if isinstance(outcome, RecordResult):
                    self._remember(incoming, None, outcome, stamp)
                else:
                    self._refused(incoming, outcome)
        self._flush_new_records()

    def _refused(self, incoming: Incoming, refused: Reject | WaitForPatient) -> None:
        if isinstance(refused, WaitForPatient):
            self._quarantine_incoming(
                incoming,
                f"{incoming.resource_type}: waiting for its patient to arrive",
                waiting_for=refused.source_patient_id,
            )
        else:
            self._quarantine_incoming(incoming, str(refused))

    def _remember(
        self,
        incoming: Incoming,
        held: Held | None,
        result: RecordResult,
        stamp: datetime.datetime,
        codes: list[list[str]] | None = None,
    ) -> None:
        rtype = incoming.resource_type
        if held is None:
            a = self.adapters
            at = a.dt(stamp)
            self.new_records.add(
                (
                    self.source.pk,
                    rtype,
                    incoming.resource_id,
                    incoming.version,
                    a.dt(incoming.updated),
                    incoming.digest,
                    a.uid(result.target_id),
                    a.uid(result.patient_id),
                    "",
                    a.js(codes or []),
                    at,
                    at,
                )
            )
            self.summary.add(rtype, "created")
        else:
            SourceRecord.objects.filter(pk=held.pk).update(
                version_id=incoming.version,
                last_updated=incoming.updated,
                content_hash=incoming.digest,
                target_id=result.target_id,
                patient_id=result.patient_id,
                codes=codes or [],
                updated_at=stamp,
            )
            self.summary.add(rtype, "updated" if result.changed else "unchanged")
        self.targets[(rtype, incoming.resource_id)] = result.target_id
        if result.patient_id is not None and result.changed:
            self.touched.add(result.patient_id)
        if rtype == "Patient" and result.patient_id is not None:
            self.patients[incoming.resource_id] = result.patient_id

    def _flush_new_records(self) -> None:
        """Source records of newly taken resources, in one insert per batch of types."""
        self.new_records.insert()

    def _quarantine_incoming(self, incoming: Incoming, reason: str, waiting_for: str = "") -> None:
        self.summary.add(incoming.resource_type, "waiting" if waiting_for else "quarantined")
        payload = (
            incoming.raw.decode("utf-8", errors="replace").rstrip("\n")
            if incoming.raw is not None
            else orjson.dumps(incoming.resource).decode()
        )
        quarantine_add(
            source=self.source,
            run=self.run,
            format="fhir-ndjson" if incoming.raw is not None else "fhir-json",
            origin=incoming.origin,
            line=incoming.line,
            resource_type=incoming.resource_type,
            reason=reason,
            payload=payload,
            waiting_for=waiting_for,
        )

    # --- the end of a run -------------------------------------------------------

    def finish(self) -> ImportRun:
        self.flush()
        self.touched.update(resolve_facts(self.source))
        self._retry_waiting()
        # Only the patients this import touched are re-evaluated (careloop.caregaps).
        caregaps_refresh(patient_ids=sorted(self.touched))
        run = self.run
        run.counts = self.summary.counts
        run.finished_at = now()
        run.status = (
            RunStatus.DONE_WITH_QUARANTINE if self.summary.total("quarantined") else RunStatus.DONE
        )
        with transaction.atomic():
            run.save(update_fields=["counts", "finished_at", "status"])
            audit_record(
                action="ehr.import",
                actor_kind="integration",
                actor_id=self.source.name,
                resource_type="import_run",
                resource_id=str(run.id),
                fields=tuple(sorted(self.summary.counts)),
                outcome="success",
            )
        return run

    def _retry_waiting(self) -> None:
        """Records parked for a patient that has now arrived go through again."""
        waiting = QuarantineItem.objects.filter(
            source=self.source, status=QuarantineStatus.OPEN
        ).exclude(waiting_for="")
        arrived = set(
            SourceRecord.objects.filter(
                source=self.source,
                resource_type="Patient",
                patient__isnull=False,
                resource_id__in=Subquery(waiting.values("waiting_for")),
            ).values_list("resource_id", flat=True)
        )
        if arrived:
            reprocess(
                importer=self,
                items=list(waiting.filter(waiting_for__in=arrived).order_by("created_at", "line")),
            )


def resolve_facts(source: Source) -> set[uuid.UUID]:
    """Give facts whose patient has since arrived their patient; return those patients."""
    patient = SourceRecord.objects.filter(
        source=source,
        resource_type="Patient",
        resource_id=OuterRef("subject_ref"),
        patient__isnull=False,
    ).values("patient_id")[:1]
    waiting = (
        ClinicalFact.objects.filter(source_system=source.name, patient__isnull=True)
        .exclude(subject_ref="")
        .values("subject_ref")
    )
    patients = set(
        SourceRecord.objects.filter(
            source=source,
            resource_type="Patient",
            patient__isnull=False,
            resource_id__in=Subquery(waiting),
        ).values_list("patient_id", flat=True)
    )
    if not patients:
        return set()
    with transaction.atomic():
        (
            ClinicalFact.objects.filter(source_system=source.name, patient__isnull=True)
            .exclude(subject_ref="")
            .filter(
                subject_ref__in=Subquery(
                    SourceRecord.objects.filter(
                        source=source, resource_type="Patient", patient__isnull=False
                    ).values("resource_id")
                )
            )
            .update(patient=Subquery(patient))
        )
    return patients


def reprocess(*, importer: Importer, items: Sequence[QuarantineItem]) -> None:
    """Run quarantined items through `importer` again; resolved ones are closed."""
    for item in items:
        raw = item.payload.encode()
        before = importer.summary.total("quarantined") + importer.summary.total("waiting")
        importer.feed(reader.Item(origin=item.origin, line=item.line, raw=raw))
        importer.flush()
        after = importer.summary.total("quarantined") + importer.summary.total("waiting")
        status = QuarantineStatus.REPROCESSED if after == before else QuarantineStatus.DISMISSED
        # A failure again made a new item; this one is closed either way, and the new
        # item carries the current reason.
        QuarantineItem.objects.filter(pk=item.pk).update(status=status, resolved_at=now())


def _new_run(source: Source, kind: str) -> ImportRun:
    return ImportRun.objects.create(source=source, kind=kind, started_at=now())


def import_paths(
    paths: Sequence[Path],
    *,
    source_name: str = "files",
    kind: str = "files",
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_RESOURCES,
) -> ImportRun:
    """Import FHIR files, folders and Bulk Data exports; return the finished run."""
    try:
        files = reader.input_files(paths)
    except reader.InputError as error:
        raise ImportFailed(str(error)) from error
    source = source_for(source_name)
    run = _new_run(source, kind)
    importer = Importer(source=source, run=run, progress=progress, batch_size=batch_size)
    started = time.monotonic()
    try:
        for file in files:
            expected = file.resource_type if file.ndjson else ""
            if expected and not handled(expected):
                importer.skip_file(file)
                continue
            for item in reader.read_file(file):
                importer.feed(item, expected)
        finished = importer.finish()
    except Exception as error:
        ImportRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED,
            finished_at=now(),
            counts=importer.summary.counts,
            error=type(error).__name__,
        )
        raise
    log.debug(
        "import run %s: %d resources in %.1f s",
        run.id,
        importer.summary.total("read"),
        time.monotonic() - started,
    )
    return finished


def reprocess_quarantine(
    *, item_ids: Sequence[uuid.UUID | str], kind: str = "reprocess"
) -> ImportRun | None:
    """Re-process open quarantined items (after a fix), per source; return the last run."""
    items = list(
        QuarantineItem.objects.filter(pk__in=item_ids, status=QuarantineStatus.OPEN)
        .exclude(format__in=["hl7", "bulk-error"])
        .select_related("source")
        .order_by("created_at", "line")
    )
    last = None
    by_source: dict[int, list[QuarantineItem]] = defaultdict(list)
    for item in items:
        by_source[item.source_id].append(item)
    for group in by_source.values():
        source = group[0].source
        importer = Importer(source=source, run=_new_run(source, kind))
        reprocess(importer=importer, items=group)
        last = importer.finish()
    return last
