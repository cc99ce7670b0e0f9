"""Consents (the ledger: history and staff-recorded answers) and the preference centre.

Consent records are never edited, so there is no PATCH: a change, a revocation
included, is a new record (`POST`, through careloop.consent.services.consent_capture,
which records verbal or paper answers; e-signatures are taken on the signing pages).
Preferences are one document per patient, replaced whole with `PUT` through
careloop.consent.preferences.preferences_update; its ETag is keyed on the
representation, since its parts live in several tables.
"""

# No `from __future__ import annotations`: django-ninja reads the endpoint's parameter
# types at import time, through the permission wrapper, and needs them as real objects.

import datetime
import uuid
from typing import Annotated, Literal

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from pydantic import Field, StrictBool, StrictStr

from careloop.api.auth import api_user, endpoint_permission
from careloop.api.concurrency import etag_of, require_if_match, set_etag
from careloop.api.paging import PageQuery, micros, paginate
from careloop.api.problems import ProblemError
from careloop.api.schemas import ClosedInput
from careloop.consent.ledger import consent_current
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
    Purpose,
    RestrictedTopic,
)
from careloop.consent.preferences import (
    CHANNEL_CONSENT_KINDS,
    Preferences,
    preferences_current,
    preferences_update,
)
from careloop.consent.selectors import consent_history_list, consent_patient
from careloop.consent.services import ConsentError, consent_capture
from careloop.core.clock import now
from careloop.patients.models import Patient
from careloop.security.audit import audit_record, source_address
from careloop.security.permissions import Op, Resource

router = Router(tags=["consents and preferences"])

# Staff record what the patient said by phone or on paper; e-signatures have their pages.
StaffMethod = Literal["verbal", "paper"]
Note = Annotated[StrictStr, Field(max_length=2000)]


class ConsentItem(Schema):
    id: uuid.UUID
    kind: ConsentKind
    scope: str
    status: ConsentStatus
    capture_method: CaptureMethod
    captured_at: datetime.datetime
    recorded_at: datetime.datetime
    period_start: datetime.datetime
    period_end: datetime.datetime | None
    captured_by: str | None = Field(description="The staff member's username, if staff.")
    document_version: str
    signer_is_proxy: bool


class ConsentPage(Schema):
    items: list[ConsentItem]
    next_cursor: str | None


class ConsentFilter(Schema):
    kind: ConsentKind | None = None
    status: ConsentStatus | None = None


class ConsentIn(ClosedInput):
    kind: ConsentKind
    status: Literal["granted", "denied", "revoked"]
    method: StaffMethod
    scope: Annotated[StrictStr, Field(max_length=120)] = Field(
        default="", description="A coded scope (e.g. a third party's registry code)."
    )
    note: Note = ""


def _consent_item(record: ConsentRecord) -> ConsentItem:
    return ConsentItem(
        id=record.id,
        kind=ConsentKind(record.kind),
        scope=record.scope,
        status=ConsentStatus(record.status),
        capture_method=CaptureMethod(record.capture_method),
        captured_at=record.captured_at,
        recorded_at=record.recorded_at,
        period_start=record.period_start,
        period_end=record.period_end,
        captured_by=record.captured_by.username if record.captured_by else None,
        document_version=record.document_version,
        signer_is_proxy=record.signer_is_proxy,
    )


def _audit_read(
    request: HttpRequest, patient_id: uuid.UUID, resource: str, ref: str, fields: list[str]
) -> None:
    audit_record(
        action="api.read",
        request=request,
        patient_id=patient_id,
        resource_type=resource,
        resource_id=ref,
        fields=fields,
    )


@router.get(
    "/patients/{patient_id}/consents",
    response=ConsentPage,
    summary="The patient's consent history, newest first",
)
@endpoint_permission((Op.READ, Resource.CONSENT))
@transaction.atomic
def consents_index(
    request: HttpRequest, patient_id: uuid.UUID, page: PageQuery, filters: Query[ConsentFilter]
) -> ConsentPage:
    _, records = consent_history_list(
        actor=api_user(request), patient_id=patient_id, request=request
    )
    wanted = [
        r
        for r in records
        if (filters.kind is None or r.kind == filters.kind)
        and (filters.status is None or r.status == filters.status)
    ]
    shown, cursor = paginate(
        wanted,
        key=lambda r: (micros(r.captured_at), micros(r.recorded_at), str(r.id)),
        params=page,
        newest_first=True,
    )
    _audit_read(
        request, patient_id, "consent", f"shown={len(shown)}", list(ConsentItem.model_fields)
    )
    return ConsentPage(items=[_consent_item(r) for r in shown], next_cursor=cursor)


@router.post(
    "/patients/{patient_id}/consents",
    response={201: ConsentItem},
    summary="Record a consent given verbally or on paper, or a revocation",
)
@endpoint_permission((Op.WRITE, Resource.CONSENT))
@transaction.atomic
def consent_create(
    request: HttpRequest, patient_id: uuid.UUID, body: ConsentIn
) -> Status[ConsentItem]:
    user = api_user(request)
    patient = consent_patient(actor=user, patient_id=patient_id, op=Op.WRITE, request=request)
    try:
        record = consent_capture(
            actor=user,
            patient=patient,
            kind=body.kind,
            status=ConsentStatus(body.status),
            method=CaptureMethod(body.method),
            note=body.note,
            scope=body.scope,
            source_ip=source_address(request),
            request=request,
        )
    except ConsentError as error:
        raise ProblemError(422, str(error)) from None
    return Status(201, _consent_item(record))


# --- preferences --------------------------------------------------------------------


class OptIn(Schema):
    channel: Channel
    purpose: Purpose
    opted_in: bool


class PreferencesOut(Schema):
    channel_order: list[Channel]
    quiet_start: datetime.time | None
    quiet_end: datetime.time | None
    do_not_contact: bool
    opt_ins: list[OptIn]
    restricted_topics: list[RestrictedTopic]
    channel_consents: dict[str, ConsentStatus | None] = Field(
        description="The current answer per channel consent kind (null: never asked)."
    )


class OptInIn(ClosedInput):
    channel: Channel
    purpose: Purpose
    opted_in: StrictBool


class PreferencesIn(ClosedInput):
    """The whole preference centre: what is left out is cleared (a `PUT`)."""

    channel_order: Annotated[list[Channel], Field(max_length=len(Channel))] = []
    quiet_start: datetime.time | None = None
    quiet_end: datetime.time | None = None
    do_not_contact: StrictBool = False
    opt_ins: Annotated[list[OptInIn], Field(max_length=len(Channel) * len(Purpose))] = []
    restricted_topics: Annotated[list[RestrictedTopic], Field(max_length=len(RestrictedTopic))] = []
    channel_consents: dict[
        Literal["comm_sms", "comm_email", "comm_voice", "comm_push"],
        Literal["granted", "denied", "revoked"],
    ] = Field(default={}, description="Only the channel consents being given or withdrawn now.")
    method: StaffMethod
    note: Note = ""


def _preferences_out(patient: Patient) -> PreferencesOut:
    current = preferences_current(patient=patient)
    at = now()
    return PreferencesOut(
        channel_order=current.channel_order,
        quiet_start=current.quiet_start,
        quiet_end=current.quiet_end,
        do_not_contact=current.do_not_contact,
        opt_ins=[
            OptIn(channel=channel, purpose=purpose, opted_in=opted_in)
            for (channel, purpose), opted_in in sorted(current.opt_ins.items())
        ],
        restricted_topics=sorted(current.topics),
        channel_consents={
            str(kind): consent_current(patient=patient, kind=kind, at=at)
            for kind in CHANNEL_CONSENT_KINDS
        },
    )


def _tag(out: PreferencesOut) -> str:
    return etag_of(out.model_dump(mode="json"))


@router.get(
    "/patients/{patient_id}/preferences",
    response=PreferencesOut,
    summary="The patient's communication preferences, with their ETag",
)
@endpoint_permission((Op.READ, Resource.CONSENT))
@transaction.atomic
def preferences_read(
    request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID
) -> PreferencesOut:
    patient = consent_patient(
        actor=api_user(request), patient_id=patient_id, op=Op.READ, request=request
    )
    out = _preferences_out(patient)
    _audit_read(
        request,
        patient_id,
        "communication_preferences",
        str(patient_id),
        list(PreferencesOut.model_fields),
    )
    set_etag(response, _tag(out))
    return out


@router.put(
    "/patients/{patient_id}/preferences",
    response=PreferencesOut,
    summary="Replace the patient's communication preferences (needs If-Match)",
)
@endpoint_permission((Op.WRITE, Resource.CONSENT))
@transaction.atomic
def preferences_replace(
    request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID, body: PreferencesIn
) -> PreferencesOut:
    user = api_user(request)
    consent_patient(actor=user, patient_id=patient_id, op=Op.WRITE, request=request)
    # The patient row is the lock: preferences span several tables, some rows of which
    # may not exist yet, and two writers must not both pass the tag check.
    patient = Patient.objects.select_for_update().get(pk=patient_id)
    require_if_match(request, _tag(_preferences_out(patient)))
    opt_ins = {(o.channel, o.purpose): o.opted_in for o in body.opt_ins}
    if len(opt_ins) != len(body.opt_ins):
        raise ProblemError(422, "Each channel and purpose may appear once in `opt_ins`.")
    if len(set(body.channel_order)) != len(body.channel_order):
        raise ProblemError(422, "Each channel may appear once in `channel_order`.")
    try:
        preferences_update(
            actor=user,
            patient=patient,
            preferences=Preferences(
                channel_order=list(body.channel_order),
                quiet_start=body.quiet_start,
                quiet_end=body.quiet_end,
                do_not_contact=body.do_not_contact,
                opt_ins=opt_ins,
                topics=frozenset(body.restricted_topics),
                channel_consents={
                    ConsentKind(kind): ConsentStatus(status)
                    for kind, status in body.channel_consents.items()
                },
            ),
            method=CaptureMethod(body.method),
            note=body.note,
            source_ip=source_address(request),
            request=request,
        )
    except ConsentError as error:
        raise ProblemError(422, str(error)) from None
    out = _preferences_out(patient)
    set_etag(response, _tag(out))
    return out
