"""The plain records the generator yields: one `PatientRecord` per patient, with all of
that patient's rows, and one `Practice` for the whole run.

Both writers (database and FHIR NDJSON) read the same records, so the two formats
describe the same practice, ids included.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from careloop.demo.vocabulary import Code


@dataclass(frozen=True, slots=True)
class LocationRec:
    id: uuid.UUID
    name: str
    time_zone: str
    line: str
    city: str
    state: str
    postal_code: str
    phone: str


@dataclass(frozen=True, slots=True)
class ProviderRec:
    id: uuid.UUID
    given: str
    family: str
    credential: str
    npi: str
    specialty: str
    location_id: uuid.UUID
    pediatric: bool

    @property
    def display_name(self) -> str:
        return f"{self.given} {self.family}, {self.credential}"


@dataclass(frozen=True, slots=True)
class AppointmentTypeRec:
    code: str
    name: str
    minutes: int
    telehealth: bool
    new_patient: bool
    self_bookable: bool
    visit_code: str


@dataclass(frozen=True, slots=True)
class Practice:
    organization_id: uuid.UUID
    name: str
    locations: tuple[LocationRec, ...]
    providers: tuple[ProviderRec, ...]
    appointment_types: tuple[AppointmentTypeRec, ...]


@dataclass(frozen=True, slots=True)
class ContactRec:
    id: uuid.UUID
    system: str  # phone | email
    use: str  # mobile | home | work
    value: str
    rank: int
    verified: bool
    can_sms: bool
    can_voice: bool
    can_email: bool


@dataclass(frozen=True, slots=True)
class CoverageRec:
    id: uuid.UUID
    category: str
    payer_name: str
    plan_name: str
    member_id: str | None
    period_start: datetime.date
    period_end: datetime.date | None
    status: str
    rank: int


@dataclass(frozen=True, slots=True)
class OptInRec:
    channel: str
    purpose: str
    opted_in: bool


@dataclass(frozen=True, slots=True)
class PreferenceRec:
    channel_order: tuple[str, ...]
    quiet_start: datetime.time | None
    quiet_end: datetime.time | None
    do_not_contact: bool
    opt_ins: tuple[OptInRec, ...]


@dataclass(frozen=True, slots=True)
class AppointmentRec:
    id: uuid.UUID
    provider_id: uuid.UUID
    location_id: uuid.UUID
    type_code: str
    start: datetime.datetime
    end: datetime.datetime
    status: str
    created_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class Component:
    code: Code
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class FactRec:
    """One clinical fact. `alt` carries a second coding (the ICD-10-CM of a condition,
    the LOINC of a screening); `components` the parts of a panel such as blood pressure;
    `encounter_id` the visit it was recorded at; `reason` why it was done or ordered
    (reasonCode); `also_category` a second Observation category the FHIR resource
    carries besides `category` (the profile one, which careloop keeps); `intent` a
    request's; `recorded` when it was ordered or recorded (authoredOn, recordedDate).
    A fact with an `end` is a Period in FHIR, one without a date-time."""

    id: uuid.UUID
    kind: str
    code: Code
    status: str
    category: str
    start: datetime.datetime
    end: datetime.datetime | None = None
    value_num: float | None = None
    value_code: Code | None = None
    unit: str = ""
    alt: Code | None = None
    components: tuple[Component, ...] = ()
    encounter_id: uuid.UUID | None = None
    appointment_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None
    location_id: uuid.UUID | None = None
    reason: Code | None = None
    also_category: str = ""
    intent: str = ""
    recorded: datetime.datetime | None = None


@dataclass(frozen=True, slots=True)
class ReferralRec:
    id: uuid.UUID
    direction: str
    status: str
    specialty: str
    counterpart: str
    reason: Code | None
    created_at: datetime.datetime
    closed_at: datetime.datetime | None
    requester_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class LeadRec:
    id: uuid.UUID
    given: str
    family: str
    phone: str | None
    email: str | None
    source: str
    campaign: str
    interest: str
    status: str
    created_at: datetime.datetime
    converted: bool


@dataclass(frozen=True, slots=True)
class PatientRec:
    id: uuid.UUID
    index: int
    mrn: str
    given: str
    family: str
    preferred_name: str | None
    birth_date: datetime.date
    sex: str
    preferred_language: str
    address_line: str
    city: str
    state: str
    postal_code: str
    time_zone: str
    lifecycle_stage: str
    primary_provider_id: uuid.UUID
    home_location_id: uuid.UUID
    created_at: datetime.datetime
    identifier_id: uuid.UUID
    contacts: tuple[ContactRec, ...]
    coverages: tuple[CoverageRec, ...]
    preference: PreferenceRec
    appointments: tuple[AppointmentRec, ...]
    facts: tuple[FactRec, ...]
    referrals: tuple[ReferralRec, ...]
    leads: tuple[LeadRec, ...]
