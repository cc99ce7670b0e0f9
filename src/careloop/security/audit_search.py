"""Reading the audit log: the auditor's search, and a patient's accounting of disclosures.

Every read of the log is itself audited (`audit.search`, `audit.export`): the log
holds patient ids and who looked at whom, so reading it is an access like any other.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import F, QuerySet
from django.http import HttpRequest

from careloop.core.errors import NotFound
from careloop.security.access import Actor
from careloop.security.audit import audit_record
from careloop.security.models import AuditEvent, Role, User
from careloop.security.permissions import Op, Resource, actor_allowed, require

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilter:
    """What an auditor may filter on; none of it is PHI of class I (ids and usernames)."""

    patient_id: uuid.UUID | None = None
    username: str = ""
    action: str = ""
    outcome: str = ""
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    def apply(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.patient_id is not None:
            events = events.filter(patient_id=self.patient_id)
        if self.username:
            events = events.filter(actor_label=self.username)
        if self.action:
            events = events.filter(action=self.action)
        if self.outcome:
            events = events.filter(outcome=self.outcome)
        if self.since is not None:
            events = events.filter(at__gte=self.since)
        if self.until is not None:
            events = events.filter(at__lt=self.until)
        return events

    def describe(self) -> list[str]:
        """The filter as `name=value` words for the audit trail of the search itself."""
        words = [
            f"patient={self.patient_id}" if self.patient_id else "",
            f"user={self.username}" if self.username else "",
            f"action={self.action}" if self.action else "",
            f"outcome={self.outcome}" if self.outcome else "",
            f"since={self.since.isoformat()}" if self.since else "",
            f"until={self.until.isoformat()}" if self.until else "",
        ]
        return [word for word in words if word]


def audit_search(
    *, actor: Actor, filters: AuditFilter, page: int | str = 1, request: HttpRequest | None = None
) -> Page[AuditEvent]:
    """One page of matching events, newest first; the search is audited."""
    require(actor, Op.READ, Resource.AUDIT, request=request, patient_id=filters.patient_id)
    events = filters.apply(AuditEvent.objects.order_by(F("seq").desc(nulls_first=True), "-at"))
    result = Paginator(events, PAGE_SIZE).get_page(page)
    audit_record(
        action="audit.search",
        request=request,
        actor=actor,
        patient_id=filters.patient_id,
        resource_type="AuditEvent",
        fields=filters.describe(),
    )
    return result


def audit_export_events(
    *, actor: Actor, filters: AuditFilter, format: str, request: HttpRequest | None = None
) -> Iterator[AuditEvent]:
    """The matching events oldest first, streamed; the export is audited before it starts."""
    require(actor, Op.EXPORT, Resource.AUDIT, request=request, patient_id=filters.patient_id)
    audit_record(
        action="audit.export",
        request=request,
        actor=actor,
        patient_id=filters.patient_id,
        resource_type="AuditEvent",
        resource_id=format,
        fields=filters.describe(),
    )
    # Sealed events in chain order, then those the sealer has not reached yet.
    events = AuditEvent.objects.order_by(F("seq").asc(nulls_last=True), "at")
    return filters.apply(events).iterator(chunk_size=2000)


@dataclass(frozen=True)
class Disclosure:
    """One access to a patient's record, as the patient may see it."""

    at: datetime.datetime
    who: str  # a staff username, or "careloop" for a system job or an integration
    role: str  # the role's label today, or the kind of system actor
    action: str
    fields: list[str] = field(default_factory=list)


# What counts as someone else reading or changing the record (not sign-ins, not denials).
DISCLOSURE_ACTIONS = frozenset(
    {
        "patient.list",
        "patient.search",
        "patient.view",
        "patient.create",
        "patient.update",
        "export.csv",
        "export.ndjson",
        "access.break_glass",
        "api.read",
        "api.write",
        "fhir.read",
    }
)


def _may_see_disclosures(actor: Actor, patient_id: uuid.UUID) -> bool:
    # Hook for the portal: a patient user will see their own record's report once the
    # portal links a user to a patient (`or actor.patient_id == patient_id`, say).
    return actor_allowed(actor, Op.READ, Resource.AUDIT)


def audit_disclosures_for_patient(
    *,
    actor: Actor,
    patient_id: uuid.UUID,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    request: HttpRequest | None = None,
) -> list[Disclosure]:
    """Who accessed this patient's record, and when, newest first.

    Staff appear by username and role (the role they hold now: events record who, not
    which role they had); system jobs and integration clients appear as careloop. The
    patient's own actions and refused attempts are not disclosures. Raises `NotFound`
    for an actor who may not see the report (the same for any patient id).
    """
    if not _may_see_disclosures(actor, patient_id):
        raise NotFound
    audit_record(
        action="audit.search",
        request=request,
        actor=actor,
        patient_id=patient_id,
        resource_type="AuditEvent",
        fields=["disclosures"],
    )
    events = AuditEvent.objects.filter(
        patient_id=patient_id, action__in=DISCLOSURE_ACTIONS, outcome="success"
    ).exclude(actor_kind=AuditEvent.ActorKind.PATIENT)
    if since is not None:
        events = events.filter(at__gte=since)
    if until is not None:
        events = events.filter(at__lt=until)
    columns = ("at", "actor_kind", "actor_id", "actor_label", "action", "fields")
    rows = list(events.order_by(F("seq").desc(nulls_first=True), "-at").values_list(*columns))
    staff_ids = {int(row[2]) for row in rows if row[1] == "user" and row[2].isdigit()}
    roles = dict(User.objects.filter(pk__in=staff_ids).values_list("pk", "role"))
    labels = dict(Role.choices)
    result = []
    for at, kind, actor_id, label, action, names in rows:
        if kind == AuditEvent.ActorKind.USER:
            role = roles.get(int(actor_id)) if actor_id.isdigit() else None
            who, role_label = label, labels.get(role or "", "former staff")
        else:
            who, role_label = "careloop", AuditEvent.ActorKind(kind).label
        result.append(Disclosure(at=at, who=who, role=role_label, action=action, fields=names))
    return result
