"""The contract between the ingest pipeline and the code that maps one kind of FHIR
resource into careloop's own tables (patients, coverage, appointments...).

Clinical resources (Condition, Observation...) are mapped by careloop.ehr.facts into
clinical fact rows and written set-based. Everything else is lower volume and needs
careloop's services (encryption, matching, the timeline), so it goes through a
`RecordHandler`, registered by resource type in `RECORD_HANDLERS`
(careloop.ehr.records fills it). The pipeline has already checked identity and
version: a handler is called only for a resource that is new or newer than the one
careloop holds, inside the batch's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from careloop.ehr.fhir_values import reference_id
from careloop.ehr.models import ImportRun, Source


class Reject(Exception):  # noqa: N818 - the domain's word
    """This resource cannot be taken in; the message is the quarantine reason (no PHI)."""


class WaitForPatient(Exception):  # noqa: N818 - the domain's word
    """The resource's patient has not arrived from this source yet: park it until it does."""

    def __init__(self, source_patient_id: str) -> None:
        super().__init__(f"waiting for Patient/{source_patient_id}")
        self.source_patient_id = source_patient_id


@dataclass(slots=True)
class RecordContext:
    source: Source
    run: ImportRun
    # The careloop patient that the source calls Patient/<id>, if it has arrived.
    patient_for: Callable[[str], uuid.UUID | None]
    # The careloop row a reference names ("Practitioner/123" -> a provider id), if known.
    target_for: Callable[[str, str], uuid.UUID | None]


@dataclass(frozen=True, slots=True)
class RecordResult:
    # The careloop row the resource became (None when it is only remembered).
    target_id: uuid.UUID | None
    # The careloop patient it is about (for a Patient: the patient itself).
    patient_id: uuid.UUID | None = None
    # True when the careloop row was changed (False: same data under a new version).
    changed: bool = True


RecordHandler = Callable[[RecordContext, dict[str, Any], uuid.UUID | None], RecordResult]
"""(context, resource, target_id of the version careloop holds or None) -> result."""

RECORD_HANDLERS: dict[str, RecordHandler] = {}


def record_handler(resource_type: str) -> Callable[[RecordHandler], RecordHandler]:
    """Register the handler for one resource type."""

    def register(handler: RecordHandler) -> RecordHandler:
        RECORD_HANDLERS[resource_type] = handler
        return handler

    return register


def subject_id(resource: dict[str, Any], key: str = "subject") -> str | None:
    """The source's patient id from a reference like {"reference": "Patient/123"}
    (also "urn:uuid:123" and absolute URLs ending in Patient/123)."""
    return reference_id(resource.get(key), "Patient")
