"""Patients: search (`POST /patients/search`) and one patient (`GET /patients/{id}`).

Search is a POST with a JSON body because what is searched for (names, phones, birth
dates) is PHI class I and must never sit in a URL or an access log. Pages are cut by
key, not by offset: the cursor is the (created_at, id) of the last row shown, so a
page never repeats or skips a patient when others are added meanwhile.

Every patient returned is audited as `api.read` with the patient's id and the fields
sent, in the transaction that read them.
"""

# No `from __future__ import annotations`: django-ninja reads the endpoint's parameter
# types at import time, through the permission wrapper, and needs them as real objects.

import base64
import binascii
import datetime
import uuid
from typing import Annotated

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field, StrictStr

from careloop.api.auth import api_user, endpoint_permission
from careloop.api.concurrency import etag_of, set_etag
from careloop.api.problems import ProblemError
from careloop.api.schemas import (
    Address,
    ClosedInput,
    ContactPointOut,
    CoverageOut,
    Identifier,
    PatientOut,
    PatientSearchIn,
    PatientSearchOut,
    PatientSummary,
)
from careloop.core import clock
from careloop.patients.models import Patient, Sex
from careloop.patients.registration import DuplicateSuspected, Registration, patient_register
from careloop.patients.selectors import patient_profile, patient_search_queryset
from careloop.security.audit import audit_record
from careloop.security.normalize import NormalizationError
from careloop.security.permissions import Op, Resource

router = Router(tags=["patients"])

SUMMARY_FIELDS = tuple(PatientSummary.model_fields)
AUDIT_RESOURCE = "Patient"


def encode_cursor(patient: Patient) -> str:
    key = f"{patient.created_at.isoformat()}|{patient.id}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime.datetime, uuid.UUID]:
    """The (created_at, id) key in a cursor; a 400 problem for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, patient_id = text.partition("|")
        at = datetime.datetime.fromisoformat(created)
        key = (at, uuid.UUID(patient_id))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HttpError(400, "The cursor is not one this API issued.") from None
    if at.tzinfo is None:
        raise HttpError(400, "The cursor is not one this API issued.")
    return key


def _summary(patient: Patient) -> PatientSummary:
    return PatientSummary(
        id=patient.id,
        given_name=patient.given_name,
        family_name=patient.family_name,
        preferred_name=patient.preferred_name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        lifecycle_stage=patient.lifecycle_stage,
    )


@router.post(
    "/patients/search",
    response=PatientSearchOut,
    summary="Search patients by name, birth date, phone, e-mail or MRN",
)
@endpoint_permission((Op.READ, Resource.DEMOGRAPHICS))
@transaction.atomic
def patients_search(request: HttpRequest, body: PatientSearchIn) -> PatientSearchOut:
    user = api_user(request)
    patients = patient_search_queryset(actor=user, query=body.query)
    if body.cursor is not None:
        at, last_id = decode_cursor(body.cursor)
        # Newest first: the next page holds what sorts after the last row shown.
        patients = patients.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=last_id))
    page = list(patients[: body.limit + 1])
    shown, more = page[: body.limit], len(page) > body.limit
    audit_record(
        action="api.read",
        request=request,
        resource_type=AUDIT_RESOURCE,
        resource_id="search",
        fields=["search"],
    )
    for patient in shown:
        audit_record(
            action="api.read",
            request=request,
            patient_id=patient.id,
            resource_type=AUDIT_RESOURCE,
            resource_id=str(patient.id),
            fields=SUMMARY_FIELDS,
        )
    return PatientSearchOut(
        items=[_summary(patient) for patient in shown],
        next_cursor=encode_cursor(shown[-1]) if more else None,
    )


@router.get(
    "/patients/{patient_id}",
    response=PatientOut,
    summary="One patient: demographics, identifiers, and what the role may read of contacts "
    "and coverage",
)
@endpoint_permission((Op.READ, Resource.DEMOGRAPHICS))
@transaction.atomic
def patient_read(request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID) -> PatientOut:
    profile = patient_profile(actor=api_user(request), patient_id=patient_id)
    p = profile.patient
    out = PatientOut(
        id=p.id,
        given_name=p.given_name,
        family_name=p.family_name,
        preferred_name=p.preferred_name,
        birth_date=p.birth_date,
        sex=p.sex,
        gender_identity=p.gender_identity,
        preferred_language=p.preferred_language,
        time_zone=p.time_zone,
        address=Address(line=p.address_line, city=p.city, postal_code=p.postal_code, state=p.state),
        lifecycle_stage=p.lifecycle_stage,
        deceased_on=p.deceased_on,
        identifiers=[
            Identifier(system=i.system, kind=i.kind, value=i.value) for i in profile.identifiers
        ],
        contact_points=None
        if profile.contact_points is None
        else [
            ContactPointOut(
                system=c.system,
                use=c.use,
                value=c.value,
                rank=c.rank,
                verified=c.verified,
                can_sms=c.can_sms,
                can_voice=c.can_voice,
                can_email=c.can_email,
            )
            for c in profile.contact_points
        ],
        coverages=None
        if profile.coverages is None
        else [
            CoverageOut(
                payer_category=c.payer_category,
                payer_name=c.payer_name,
                plan_name=c.plan_name,
                member_id=c.member_id,
                subscriber_relationship=c.subscriber_relationship,
                period_start=c.period_start,
                period_end=c.period_end,
                status=c.status,
                rank=c.rank,
            )
            for c in profile.coverages
        ],
    )
    audit_record(
        action="api.read",
        request=request,
        patient_id=p.id,
        resource_type=AUDIT_RESOURCE,
        resource_id=str(p.id),
        fields=[name for name, value in out if value is not None],
    )
    # Keyed on the row's own version (`updated_at`): the tag an update of demographics
    # will ask for in `If-Match`.
    set_etag(response, etag_of([str(p.id), p.updated_at.isoformat()]))
    return out


Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]


class PatientRegisterIn(ClosedInput):
    given_name: Name
    family_name: Name
    birth_date: datetime.date
    sex: Sex = Sex.UNKNOWN
    preferred_language: Annotated[StrictStr, Field(min_length=2, max_length=16)] = "en"
    time_zone: Annotated[StrictStr, Field(min_length=1, max_length=64)] = "America/New_York"
    state: Annotated[StrictStr, Field(max_length=2)] = ""
    phone: Annotated[StrictStr, Field(max_length=40)] = ""
    email: Annotated[StrictStr, Field(max_length=254)] = ""
    mrn: Annotated[StrictStr, Field(max_length=40)] = ""
    not_a_duplicate_because: Annotated[StrictStr, Field(max_length=500)] = Field(
        default="",
        description="Why this is not one of the candidates a previous 409 listed; "
        "kept encrypted in the audit log.",
    )


class DuplicateCandidate(Schema):
    id: uuid.UUID
    why: str


@router.post(
    "/patients",
    response={201: PatientSummary},
    summary="Register a patient; 409 with the candidate ids when it may be a duplicate",
)
@endpoint_permission((Op.WRITE, Resource.DEMOGRAPHICS))
@transaction.atomic
def patient_create(request: HttpRequest, body: PatientRegisterIn) -> Status[PatientSummary]:
    if body.birth_date > clock.today():
        raise ProblemError(422, "The date of birth is in the future.")
    fields = body.dict(exclude={"not_a_duplicate_because"})
    try:
        patient = patient_register(
            actor=api_user(request),
            registration=Registration(**fields),
            not_a_duplicate_because=body.not_a_duplicate_because,
        )
    except DuplicateSuspected as suspected:
        raise ProblemError(
            409,
            "This may be a patient already registered. Open a candidate, or register "
            "anyway with `not_a_duplicate_because`.",
            candidates=[
                DuplicateCandidate(id=c.patient.pk, why=c.why).model_dump(mode="json")
                for c in suspected.candidates
            ],
        ) from None
    except NormalizationError:
        raise ProblemError(422, "The phone number, e-mail address or MRN is not valid.") from None
    except IntegrityError:
        # An MRN is unique per issuing system, even for a patient registered "anyway".
        raise ProblemError(409, "Another patient already has this MRN.") from None
    return Status(201, _summary(patient))
