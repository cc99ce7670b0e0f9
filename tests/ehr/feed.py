"""Driving record handlers the way the import pipeline does, for handler tests.

`Feed.send(resource)` finds the version careloop holds (its target), calls the
registered handler inside a savepoint, and remembers the result as the pipeline would
(a `SourceRecord` per resource); a `Reject` or `WaitForPatient` propagates to the test.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

import careloop.ehr.records  # noqa: F401 - fills RECORD_HANDLERS
from careloop.core.clock import now
from careloop.ehr.handlers import RECORD_HANDLERS, RecordContext, RecordResult
from careloop.ehr.models import ImportRun, Source, SourceRecord


def make_source(name: str = "riverbend-ehr") -> Source:
    return Source.objects.create(name=name, created_at=now())


@dataclass
class Feed:
    source: Source
    run: ImportRun

    @classmethod
    def open(cls, source: Source | None = None) -> Feed:
        source = source or make_source()
        run = ImportRun.objects.create(source=source, kind="files", started_at=now())
        return cls(source, run)

    def _record(self, resource_type: str, resource_id: str) -> SourceRecord | None:
        return SourceRecord.objects.filter(
            source=self.source, resource_type=resource_type, resource_id=resource_id
        ).first()

    def patient_for(self, source_id: str) -> uuid.UUID | None:
        record = self._record("Patient", source_id)
        return record.patient_id if record else None

    def target_for(self, resource_type: str, source_id: str) -> uuid.UUID | None:
        record = self._record(resource_type, source_id)
        return record.target_id if record else None

    def context(self) -> RecordContext:
        return RecordContext(self.source, self.run, self.patient_for, self.target_for)

    def send(self, resource: dict[str, Any]) -> RecordResult:
        kind, rid = resource["resourceType"], resource["id"]
        held = self._record(kind, rid)
        with transaction.atomic():
            result = RECORD_HANDLERS[kind](
                self.context(), resource, held.target_id if held else None
            )
        at = now()
        SourceRecord.objects.update_or_create(
            source=self.source,
            resource_type=kind,
            resource_id=rid,
            defaults={
                "target_id": result.target_id,
                "patient_id": result.patient_id,
                "content_hash": 0,
                "updated_at": at,
            },
            create_defaults={
                "target_id": result.target_id,
                "patient_id": result.patient_id,
                "content_hash": 0,
                "created_at": at,
                "updated_at": at,
            },
        )
        return result
