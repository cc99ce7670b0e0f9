"""Proxy access: whose records a portal account may act for, and what it may do there.

A portal account is one patient's. It may also act for another patient when that
patient's record names the account's patient as the related person of a relationship
in force today (careloop.patients.household: a parent, a guardian, a caregiver) and
the relationship's flags allow the action:

| power           | flag                | what it opens                                   |
| --------------- | ------------------- | ----------------------------------------------- |
| `view`          | `may_view_record`   | the record's pages: appointments, reminders, tasks |
| `schedule`      | `may_schedule`      | book, confirm, reschedule, cancel, check in     |
| `message`       | `may_message`       | secure messages with the care team              |
| `sign_consents` | `may_sign_consents` | signing consents                                |

The account's own record allows every power. Several relationships to the same
patient add up. A record merged into another is no one's to act for (the survivor's
relationships say who may act for it). Every page that acts for someone else writes
a `portal.proxy_access` audit event naming both people: the signed-in user (the
actor, whose account is the proxy's record, named by id in `resource_id`) and the
patient acted for (`patient_id`).

The record a page acts for is chosen with the switcher on the home page and kept in
the session (`ACTING_FOR`); a page asks `portal_acting(request, account, power)`.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from django.db.models import Q
from django.http import HttpRequest

from careloop.core.errors import NotFound
from careloop.core.practice import practice_today
from careloop.patients.models import Patient, PatientRelationship
from careloop.portal.models import PortalAccount
from careloop.security.audit import audit_record
from careloop.security.models import Role, User

# The session key naming the patient the signed-in account is acting for.
ACTING_FOR = "careloop.portal.acting_for"


class Power(enum.StrEnum):
    VIEW = "view"
    SCHEDULE = "schedule"
    MESSAGE = "message"
    SIGN_CONSENTS = "sign_consents"


FLAGS: dict[Power, str] = {
    Power.VIEW: "may_view_record",
    Power.SCHEDULE: "may_schedule",
    Power.MESSAGE: "may_message",
    Power.SIGN_CONSENTS: "may_sign_consents",
}
EVERY_POWER = frozenset(Power)


@dataclass(frozen=True)
class Grant:
    """One record an account may act for, and the powers it has there."""

    patient: Patient
    own: bool
    powers: frozenset[Power]
    relationship_ids: tuple[uuid.UUID, ...] = ()

    def allows(self, power: Power) -> bool:
        return power in self.powers


def _in_force_for(proxy_id: uuid.UUID) -> Q:
    """Relationships naming `proxy_id` as the related person that hold today (the same
    rule as `relationships_in_force`, seen from the related person's side)."""
    today = practice_today()
    return (
        Q(related_patient_id=proxy_id, period_start__lte=today)
        & (Q(period_end__isnull=True) | Q(period_end__gte=today))
        & Q(patient__merged_into__isnull=True)
    )


def proxy_grants(account: PortalAccount) -> list[Grant]:
    """The account's own record (every power) first, then each record it acts for with
    at least one power, in the order the relationships began."""
    grants = [Grant(patient=account.patient, own=True, powers=EVERY_POWER)]
    found: dict[uuid.UUID, tuple[Patient, set[Power], list[uuid.UUID]]] = {}
    relationships = (
        PatientRelationship.objects.filter(_in_force_for(account.patient_id))
        .exclude(patient_id=account.patient_id)
        .select_related("patient")
        .order_by("period_start", "created_at", "id")
    )
    for relationship in relationships:
        powers = {power for power, flag in FLAGS.items() if getattr(relationship, flag)}
        if not powers:
            continue
        patient, held, ids = found.setdefault(
            relationship.patient_id, (relationship.patient, set(), [])
        )
        held |= powers
        ids.append(relationship.pk)
    for patient, held, ids in found.values():
        grants.append(
            Grant(patient=patient, own=False, powers=frozenset(held), relationship_ids=tuple(ids))
        )
    return grants


def proxy_grant(*, account: PortalAccount, patient_id: uuid.UUID, power: Power) -> Grant:
    """The grant on `patient_id` when it allows `power`; `NotFound` alike for a record
    that does not exist, is not the account's to act for, or lacks the power."""
    for grant in proxy_grants(account):
        if grant.patient.pk == patient_id and grant.allows(power):
            return grant
    raise NotFound("no such patient")


def proxy_access_audit(
    *, request: HttpRequest | None, account: PortalAccount, grant: Grant, power: Power
) -> None:
    """The audit event of one proxy access: the signed-in user acts (as the account's
    patient, named by id) for the grant's patient. Nothing for the own record."""
    if grant.own:
        return
    audit_record(
        action="portal.proxy_access",
        request=request,
        actor=account.user,
        patient_id=grant.patient.pk,
        resource_type="proxy_for",
        resource_id=str(account.patient_id),
        fields=(str(power),),
    )


def portal_acting(*, request: HttpRequest, account: PortalAccount, power: Power | None) -> Grant:
    """The record this page acts for: the one chosen in the switcher (kept in the
    session), else the account's own; audited when it is someone else's. A chosen
    record whose grant lacks `power` (any power, for None), or has ended, raises
    `NotFound`."""
    chosen = request.session.get(ACTING_FOR)
    grants = proxy_grants(account)
    if not chosen or chosen == str(account.patient_id):
        return grants[0]
    grant = next((g for g in grants if str(g.patient.pk) == chosen), None)
    if grant is None:
        # The relationship ended (or the record was merged) since it was chosen: the
        # home page goes back to the own record; a page that acts refuses.
        request.session.pop(ACTING_FOR, None)
        if power is None:
            return grants[0]
        raise NotFound("no such patient")
    if power is not None and not grant.allows(power):
        raise NotFound("no such patient")
    audited = power or min(grant.powers)
    proxy_access_audit(request=request, account=account, grant=grant, power=audited)
    return grant


def portal_acting_choose(
    *, request: HttpRequest, account: PortalAccount, patient_id: uuid.UUID
) -> Grant:
    """Switch the session to `patient_id` (a record the account may act for with any
    power); `NotFound` otherwise, and the session keeps its choice."""
    grant = next((g for g in proxy_grants(account) if g.patient.pk == patient_id), None)
    if grant is None:
        raise NotFound("no such patient")
    if grant.own:
        request.session.pop(ACTING_FOR, None)
    else:
        request.session[ACTING_FOR] = str(patient_id)
    return grant


def proxy_may(*, user: User, patient_id: uuid.UUID, power: Power) -> bool:
    """May the patient user `user` use `power` on `patient_id`'s record? The rule the
    permission gate (careloop.security.permissions.require) applies to patient users."""
    if not user.is_active or user.role != Role.PATIENT:
        return False
    account = PortalAccount.objects.filter(user=user).select_related("patient").first()
    if account is None:
        return False
    return any(g.patient.pk == patient_id and g.allows(power) for g in proxy_grants(account))
