"""A patient's contact points and coverages: list, add, read one, change, remove.

Every write goes through careloop.patients.contacts (which checks the role and scope,
audits `patient.update` and adds the timeline entry); every read through its list
selectors, audited here as `api.read` too, with the fields sent. Changes are partial
(`PATCH`): a field left out keeps its value. `PATCH` and `DELETE` name the
representation they change with `If-Match` (careloop.api.concurrency).
"""

# No `from __future__ import annotations`: django-ninja reads the endpoint's parameter
# types at import time, through the permission wrapper, and needs them as real objects.

import datetime
import uuid
from dataclasses import replace
from typing import Annotated, Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from pydantic import Field, StrictBool, StrictInt, StrictStr

from careloop.api.auth import api_user, endpoint_permission
from careloop.api.concurrency import etag_of, require_if_match, set_etag
from careloop.api.paging import PageQuery, paginate
from careloop.api.problems import ProblemError
from careloop.api.schemas import ClosedInput
from careloop.core.errors import NotFound
from careloop.patients.contacts import (
    ContactDetails,
    CoverageDetails,
    contact_point_add,
    contact_point_remove,
    contact_point_update,
    contact_points_list,
    coverage_save,
    coverages_list,
)
from careloop.patients.models import (
    ContactPoint,
    ContactSystem,
    ContactUse,
    Coverage,
    CoverageStatus,
    PayerCategory,
)
from careloop.security.audit import audit_record
from careloop.security.normalize import NormalizationError
from careloop.security.permissions import Op, Resource

router = Router(tags=["contact points and coverages"])

Rank = Annotated[StrictInt, Field(ge=1, le=99)]
Text120 = Annotated[StrictStr, Field(max_length=120)]


# --- contact points -----------------------------------------------------------------


class ContactPointItem(Schema):
    id: uuid.UUID
    system: ContactSystem
    use: ContactUse
    value: str
    rank: int
    verified: bool
    can_sms: bool
    can_voice: bool
    can_email: bool


class ContactPointPage(Schema):
    items: list[ContactPointItem]
    next_cursor: str | None


class ContactPointIn(ClosedInput):
    system: ContactSystem
    use: ContactUse = ContactUse.MOBILE
    value: Annotated[StrictStr, Field(min_length=1, max_length=200)] = Field(
        description="A phone number (stored as E.164) or an e-mail address."
    )
    rank: Rank = 1
    verified: StrictBool = False
    can_sms: StrictBool = False
    can_voice: StrictBool = False
    can_email: StrictBool = False


class ContactPointPatch(ClosedInput):
    system: ContactSystem | None = None
    use: ContactUse | None = None
    value: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    rank: Rank | None = None
    verified: StrictBool | None = None
    can_sms: StrictBool | None = None
    can_voice: StrictBool | None = None
    can_email: StrictBool | None = None


class ContactPointFilter(Schema):
    system: ContactSystem | None = None
    use: ContactUse | None = None


def _contact_item(contact: ContactPoint) -> ContactPointItem:
    return ContactPointItem(
        id=contact.id,
        system=ContactSystem(contact.system),
        use=ContactUse(contact.use),
        value=contact.value,
        rank=contact.rank,
        verified=contact.verified,
        can_sms=contact.can_sms,
        can_voice=contact.can_voice,
        can_email=contact.can_email,
    )


def _tag(item: Schema) -> str:
    return etag_of(item.model_dump(mode="json"))


def _invalid(error: ValueError) -> ProblemError:
    # The services' messages name the rule broken, never the value (which may be PHI).
    message = "" if isinstance(error, NormalizationError) else str(error)
    return ProblemError(
        422,
        message or "The value is not a valid phone number or e-mail address.",
        errors=[{"location": "body", "message": message or "invalid value", "type": "value"}],
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


def _contact_of(request: HttpRequest, patient_id: uuid.UUID, contact_id: uuid.UUID) -> ContactPoint:
    _, contacts = contact_points_list(actor=api_user(request), patient_id=patient_id)
    for contact in contacts:
        if contact.id == contact_id:
            return contact
    raise NotFound


@router.get(
    "/patients/{patient_id}/contact-points",
    response=ContactPointPage,
    summary="The patient's phones and e-mail addresses, by system and rank",
)
# Contact points are read through the patient (Resource.DEMOGRAPHICS), which every role
# that may read contact points of a patient also holds; marketing reads them in bulk only.
@endpoint_permission((Op.READ, Resource.DEMOGRAPHICS))
@transaction.atomic
def contact_points_index(
    request: HttpRequest,
    patient_id: uuid.UUID,
    page: PageQuery,
    filters: Query[ContactPointFilter],
) -> ContactPointPage:
    _, contacts = contact_points_list(actor=api_user(request), patient_id=patient_id)
    wanted = [
        c
        for c in contacts
        if (filters.system is None or c.system == filters.system)
        and (filters.use is None or c.use == filters.use)
    ]
    shown, cursor = paginate(wanted, key=lambda c: (c.system, c.rank, str(c.id)), params=page)
    _audit_read(
        request,
        patient_id,
        "ContactPoint",
        f"shown={len(shown)}",
        list(ContactPointItem.model_fields),
    )
    return ContactPointPage(items=[_contact_item(c) for c in shown], next_cursor=cursor)


@router.post(
    "/patients/{patient_id}/contact-points",
    response={201: ContactPointItem},
    summary="Add a phone or e-mail address",
)
@endpoint_permission((Op.WRITE, Resource.CONTACT))
@transaction.atomic
def contact_point_create(
    request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID, body: ContactPointIn
) -> Status[ContactPointItem]:
    try:
        contact = contact_point_add(
            actor=api_user(request), patient_id=patient_id, details=ContactDetails(**body.dict())
        )
    except ValueError as error:
        raise _invalid(error) from None
    item = _contact_item(contact)
    set_etag(response, _tag(item))
    return Status(201, item)


@router.get(
    "/patients/{patient_id}/contact-points/{contact_id}",
    response=ContactPointItem,
    summary="One contact point, with its ETag",
)
@endpoint_permission((Op.READ, Resource.DEMOGRAPHICS))
@transaction.atomic
def contact_point_read(
    request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID, contact_id: uuid.UUID
) -> ContactPointItem:
    item = _contact_item(_contact_of(request, patient_id, contact_id))
    _audit_read(request, patient_id, "ContactPoint", str(contact_id), list(type(item).model_fields))
    set_etag(response, _tag(item))
    return item


@router.patch(
    "/patients/{patient_id}/contact-points/{contact_id}",
    response=ContactPointItem,
    summary="Change a contact point (needs If-Match)",
)
@endpoint_permission((Op.WRITE, Resource.CONTACT))
@transaction.atomic
def contact_point_change(
    request: HttpRequest,
    response: HttpResponse,
    patient_id: uuid.UUID,
    contact_id: uuid.UUID,
    body: ContactPointPatch,
) -> ContactPointItem:
    user = api_user(request)
    current = _locked_contact(request, patient_id, contact_id)
    require_if_match(request, _tag(_contact_item(current)))
    changes: dict[str, Any] = body.dict(exclude_unset=True)
    details = replace(
        ContactDetails(
            system=current.system,
            use=current.use,
            value=current.value,
            rank=current.rank,
            verified=current.verified,
            can_sms=current.can_sms,
            can_voice=current.can_voice,
            can_email=current.can_email,
        ),
        **{name: value for name, value in changes.items() if value is not None},
    )
    try:
        contact = contact_point_update(
            actor=user, patient_id=patient_id, contact_id=contact_id, details=details
        )
    except ValueError as error:
        raise _invalid(error) from None
    item = _contact_item(contact)
    set_etag(response, _tag(item))
    return item


def _locked_contact(
    request: HttpRequest, patient_id: uuid.UUID, contact_id: uuid.UUID
) -> ContactPoint:
    """The row, locked until the write commits, so no change slips between the tag check
    and the write. Found through the service first: it checks role and scope."""
    _contact_of(request, patient_id, contact_id)
    return ContactPoint.objects.select_for_update().get(pk=contact_id, patient_id=patient_id)


@router.delete(
    "/patients/{patient_id}/contact-points/{contact_id}",
    response={204: None},
    summary="Remove a contact point (If-Match optional)",
)
@endpoint_permission((Op.WRITE, Resource.CONTACT))
@transaction.atomic
def contact_point_delete(
    request: HttpRequest, patient_id: uuid.UUID, contact_id: uuid.UUID
) -> Status[None]:
    current = _locked_contact(request, patient_id, contact_id)
    require_if_match(request, _tag(_contact_item(current)), required=False)
    contact_point_remove(actor=api_user(request), patient_id=patient_id, contact_id=contact_id)
    return Status(204, None)


# --- coverages ------------------------------------------------------------------------


class CoverageItem(Schema):
    id: uuid.UUID
    payer_category: PayerCategory
    payer_name: str
    plan_name: str
    member_id: str | None
    subscriber_relationship: str
    period_start: datetime.date | None
    period_end: datetime.date | None
    status: CoverageStatus
    rank: int


class CoveragePage(Schema):
    items: list[CoverageItem]
    next_cursor: str | None


class CoverageIn(ClosedInput):
    payer_category: PayerCategory
    payer_name: Annotated[StrictStr, Field(min_length=1, max_length=120)]
    plan_name: Text120 = ""
    member_id: Annotated[StrictStr, Field(max_length=80)] = ""
    subscriber_relationship: Annotated[StrictStr, Field(min_length=1, max_length=16)] = "self"
    period_start: datetime.date | None = None
    period_end: datetime.date | None = None
    status: CoverageStatus = CoverageStatus.ACTIVE
    rank: Rank = 1


class CoveragePatch(ClosedInput):
    payer_category: PayerCategory | None = None
    payer_name: Annotated[StrictStr, Field(min_length=1, max_length=120)] | None = None
    plan_name: Text120 | None = None
    member_id: Annotated[StrictStr, Field(max_length=80)] | None = None
    subscriber_relationship: Annotated[StrictStr, Field(min_length=1, max_length=16)] | None = None
    period_start: datetime.date | None = None
    period_end: datetime.date | None = None
    status: CoverageStatus | None = None
    rank: Rank | None = None


class CoverageFilter(Schema):
    status: CoverageStatus | None = None
    payer_category: PayerCategory | None = None


def _coverage_item(c: Coverage) -> CoverageItem:
    return CoverageItem(
        id=c.id,
        payer_category=PayerCategory(c.payer_category),
        payer_name=c.payer_name,
        plan_name=c.plan_name,
        member_id=c.member_id,
        subscriber_relationship=c.subscriber_relationship,
        period_start=c.period_start,
        period_end=c.period_end,
        status=CoverageStatus(c.status),
        rank=c.rank,
    )


def _coverage_of(request: HttpRequest, patient_id: uuid.UUID, coverage_id: uuid.UUID) -> Coverage:
    _, coverages = coverages_list(actor=api_user(request), patient_id=patient_id)
    for coverage in coverages:
        if coverage.id == coverage_id:
            return coverage
    raise NotFound


@router.get(
    "/patients/{patient_id}/coverages",
    response=CoveragePage,
    summary="The patient's insurance coverages, by rank",
)
@endpoint_permission((Op.READ, Resource.COVERAGE))
@transaction.atomic
def coverages_index(
    request: HttpRequest, patient_id: uuid.UUID, page: PageQuery, filters: Query[CoverageFilter]
) -> CoveragePage:
    _, coverages = coverages_list(actor=api_user(request), patient_id=patient_id)
    wanted = [
        c
        for c in coverages
        if (filters.status is None or c.status == filters.status)
        and (filters.payer_category is None or c.payer_category == filters.payer_category)
    ]
    shown, cursor = paginate(wanted, key=lambda c: (c.rank, str(c.id)), params=page)
    _audit_read(
        request, patient_id, "Coverage", f"shown={len(shown)}", list(CoverageItem.model_fields)
    )
    return CoveragePage(items=[_coverage_item(c) for c in shown], next_cursor=cursor)


def _save_coverage(
    request: HttpRequest,
    patient_id: uuid.UUID,
    details: CoverageDetails,
    coverage_id: uuid.UUID | None,
) -> CoverageItem:
    try:
        coverage = coverage_save(
            actor=api_user(request), patient_id=patient_id, details=details, coverage_id=coverage_id
        )
    except ValueError as error:
        raise _invalid(error) from None
    return _coverage_item(coverage)


@router.post(
    "/patients/{patient_id}/coverages",
    response={201: CoverageItem},
    summary="Add an insurance coverage",
)
@endpoint_permission((Op.WRITE, Resource.COVERAGE))
@transaction.atomic
def coverage_create(
    request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID, body: CoverageIn
) -> Status[CoverageItem]:
    item = _save_coverage(request, patient_id, CoverageDetails(**body.dict()), None)
    set_etag(response, _tag(item))
    return Status(201, item)


@router.get(
    "/patients/{patient_id}/coverages/{coverage_id}",
    response=CoverageItem,
    summary="One coverage, with its ETag",
)
@endpoint_permission((Op.READ, Resource.COVERAGE))
@transaction.atomic
def coverage_read(
    request: HttpRequest, response: HttpResponse, patient_id: uuid.UUID, coverage_id: uuid.UUID
) -> CoverageItem:
    item = _coverage_item(_coverage_of(request, patient_id, coverage_id))
    _audit_read(request, patient_id, "Coverage", str(coverage_id), list(CoverageItem.model_fields))
    set_etag(response, _tag(item))
    return item


@router.patch(
    "/patients/{patient_id}/coverages/{coverage_id}",
    response=CoverageItem,
    summary="Change a coverage (needs If-Match)",
)
@endpoint_permission((Op.WRITE, Resource.COVERAGE))
@transaction.atomic
def coverage_change(
    request: HttpRequest,
    response: HttpResponse,
    patient_id: uuid.UUID,
    coverage_id: uuid.UUID,
    body: CoveragePatch,
) -> CoverageItem:
    _coverage_of(request, patient_id, coverage_id)
    current = Coverage.objects.select_for_update().get(pk=coverage_id, patient_id=patient_id)
    require_if_match(request, _tag(_coverage_item(current)))
    changes: dict[str, Any] = body.dict(exclude_unset=True)
    # Dates may be cleared with null; the other fields keep their value when null.
    nullable = {"period_start", "period_end", "member_id"}
    given: dict[str, Any] = {
        name: ("" if name == "member_id" and value is None else value)
        for name, value in changes.items()
        if value is not None or name in nullable
    }
    details = replace(
        CoverageDetails(
            payer_category=current.payer_category,
            payer_name=current.payer_name,
            plan_name=current.plan_name,
            member_id=current.member_id or "",
            subscriber_relationship=current.subscriber_relationship,
            period_start=current.period_start,
            period_end=current.period_end,
            status=current.status,
            rank=current.rank,
        ),
        **given,
    )
    item = _save_coverage(request, patient_id, details, coverage_id)
    set_etag(response, _tag(item))
    return item
