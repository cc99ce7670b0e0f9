"""The API's request and response bodies. The OpenAPI document is generated from these.

Request bodies are strict: an unknown field, or a value of the wrong JSON type (a
number sent as a string), is a 422, not something guessed at.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any

from ninja import Schema
from pydantic import ConfigDict, Field, StrictInt, StrictStr

MAX_LIMIT = 100
DEFAULT_LIMIT = 25


class StrictInput(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)


class ClosedInput(Schema):
    """A request body that refuses unknown fields; scalar fields opt into strictness
    (StrictStr, StrictInt, StrictBool) so that codes still validate into their enums
    and dates and times from their JSON strings."""

    model_config = ConfigDict(extra="forbid")


class Problem(Schema):
    """An RFC 9457 problem document (served as `application/problem+json`)."""

    type: str = Field(examples=["about:blank"])
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For 422: where each error is and what was expected."
    )


class Me(Schema):
    username: str
    full_name: str
    role: str = Field(description="One of the staff roles; see docs/permissions.md.")
    permissions: dict[str, list[str]] = Field(
        description="Resource → operations this role may perform (the permission table)."
    )


class PatientSearchIn(StrictInput):
    query: Annotated[StrictStr, Field(max_length=200)] = Field(
        default="",
        description="A full name, date of birth, phone, e-mail or MRN; empty lists everyone.",
    )
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        default=None, description="`next_cursor` of the previous page; omit for the first."
    )


class PatientSummary(Schema):
    id: uuid.UUID
    given_name: str
    family_name: str
    preferred_name: str | None
    birth_date: datetime.date
    sex: str
    lifecycle_stage: str


class PatientSearchOut(Schema):
    items: list[PatientSummary]
    next_cursor: str | None = Field(description="Pass it back for the next page; null at the end.")


class Identifier(Schema):
    system: str
    kind: str
    value: str


class ContactPointOut(Schema):
    system: str
    use: str
    value: str
    rank: int
    verified: bool
    can_sms: bool
    can_voice: bool
    can_email: bool


class CoverageOut(Schema):
    payer_category: str
    payer_name: str
    plan_name: str
    member_id: str | None
    subscriber_relationship: str
    period_start: datetime.date | None
    period_end: datetime.date | None
    status: str
    rank: int


class Address(Schema):
    line: str | None
    city: str | None
    postal_code: str | None
    state: str


class PatientOut(Schema):
    """One patient. A part the caller's role may not read is null, not an empty list."""

    id: uuid.UUID
    given_name: str
    family_name: str
    preferred_name: str | None
    birth_date: datetime.date
    sex: str
    gender_identity: str
    preferred_language: str
    time_zone: str
    address: Address
    lifecycle_stage: str
    deceased_on: datetime.date | None
    identifiers: list[Identifier]
    contact_points: list[ContactPointOut] | None
    coverages: list[CoverageOut] | None
