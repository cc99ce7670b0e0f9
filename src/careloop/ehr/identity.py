"""Who an incoming patient is: one way for every feed (FHIR files, Bulk Data, HL7 ADT).

A feed turns its own record into an `IncomingPatient` and calls `patient_upsert`. The
source's own id for the patient is remembered (a `SourceRecord` of type Patient), so
later messages from that source land on the same careloop patient. A patient new to
the source is matched by identifier first, then by demographics with a conservative
rule; a match that is likely but not certain makes a new record and a `MatchReview`
for staff, never a silent merge.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from dataclasses import dataclass, field

from careloop.ehr.models import Source


@dataclass(frozen=True, slots=True)
class IncomingIdentifier:
    system: str
    value: str
    # "mrn" or "external" (careloop.patients.models.IdentifierKind)
    kind: str = "external"


@dataclass(frozen=True, slots=True)
class IncomingContact:
    system: str  # "phone" or "email"
    value: str
    use: str = "mobile"  # mobile, home, work


@dataclass(frozen=True, slots=True)
class IncomingPatient:
    """A patient as a feed describes it; values are raw (normalised by careloop)."""

    given_name: str
    family_name: str
    birth_date: datetime.date
    sex: str = "unknown"  # female, male, other, unknown
    identifiers: tuple[IncomingIdentifier, ...] = ()
    contacts: tuple[IncomingContact, ...] = ()
    address_line: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    preferred_language: str = ""  # BCP-47 ("en", "es")
    deceased_on: datetime.date | None = None
    deceased: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class UpsertOutcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    # A new record was made and queued for review against a likely duplicate.
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class UpsertResult:
    patient_id: uuid.UUID
    outcome: UpsertOutcome


def patient_upsert(
    *, source: Source, source_patient_id: str, incoming: IncomingPatient
) -> UpsertResult:
    """Create or update the careloop patient the source calls `source_patient_id`."""
    raise NotImplementedError  # being written (issue 5)
