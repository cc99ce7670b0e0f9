"""The one permission table: which role may do which operation on which class of data.

Everything that touches data asks `allowed` (a yes/no for showing or hiding a part of a
page) or `require` (the gate before the work, which audits a refusal). Roles are the
columns of `TABLE`; a (role, resource) pair that is not listed has no operation at all.
`docs/permissions.md` is generated from this table (`markdown_table`; a test fails
when the file differs), so the documentation cannot drift.

The table answers "may this role ever do this?". Which patients a role sees is the
object-level scope, `careloop.security.scope.patient_scope`.

Besides the roles, the table has one row for the console operator (`CONSOLE`): whoever
runs `careloop <command>` on the host. Every command declares the pairs it performs
(`careloop.core.cli.CareloopCommand.permissions`) and `console_require` checks them
before it runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Final, Literal

from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.http import HttpRequest

from careloop.core.errors import PermissionDenied
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.models import AuditEvent, Role, User

Actor = User | AnonymousUser


class Resource(models.TextChoices):
    """Classes of data (and of administration) that a permission is about."""

    DEMOGRAPHICS = "demographics", "Demographics (name, birth date, sex, address, MRN)"
    CONTACT = "contact", "Contact points (phone, e-mail)"
    COVERAGE = "coverage", "Coverage (insurance)"
    APPOINTMENTS = "appointments", "Appointments"
    CLINICAL = "clinical", "Clinical facts and care gaps"
    NOTES = "notes", "Notes (free text)"
    CONSENT = "consent", "Consent and communication preferences"
    MESSAGES = "messages", "Messages to and from patients"
    AGGREGATES = "aggregates", "Aggregate counts"
    DEIDENTIFIED = "deidentified", "De-identified rows"
    AUDIT = "audit", "Audit log"
    USERS = "users", "Staff accounts and roles"
    CONFIG = "config", "Configuration"
    INTEGRATION = "integration", "EHR integration (import quarantine, without payloads)"
    KEYS = "keys", "Encryption keys"


class Op(models.TextChoices):
    READ = "read", "read"
    WRITE = "write", "write"
    EXPORT = "export", "export"


R, W, X = Op.READ, Op.WRITE, Op.EXPORT
RW: Final = frozenset({R, W})
READ_ONLY: Final = frozenset({R})
WRITE_ONLY: Final = frozenset({W})

# role -> resource -> operations. Reading the table row by row is the review.
#
# - admin runs the system and the practice's directory: accounts, configuration, keys,
#   who the patients are and their appointments; no routine clinical access (no
#   clinical, notes or messages): an admin who must see a chart is not acting as admin.
# - front_desk checks patients in and books them: identity, contact, coverage,
#   appointments, consent, and logistics messages; never clinical facts or notes.
# - care_coordinator works care gaps and referrals for her panel: clinical read (gaps
#   are computed from it), notes, messages, consent, and the practice's figures. She
#   exports a care-gap recall worklist (clinical X) to call or mail the patients on it.
# - clinician treats her patients: full clinical record, notes and messages; consent
#   is read-only (recording it is the front desk's and coordinator's work).
# - marketing reaches people who agreed to it: figures, de-identified rows, and contact
#   points for campaign lists (whose export the consent check narrows further); never
#   clinical, never the patient directory.
# - analyst: figures and de-identified rows only. auditor: the audit log only.
# - The practice's figures (aggregates: practice-wide counts, no patient in them) are
#   for every role but the auditor's and the patient's, as on the home page.
# - patient: nothing in the staff app; the portal has its own own-record rule.
# - console (not a role: the operator running `careloop` commands on the host) manages
#   accounts, tokens, configuration and keys, verifies the audit log, and loads patient
#   data (demo, imports) write-only: no command reads or lists a patient's record. The
#   one export is `careloop caregaps report` (FHIR MeasureReports for payers and audits:
#   clinical export, each audited as `fhir.export`). Anything more must be granted here
#   first, in review.
# - integration is the EHR feeds' work queue: what an import quarantined (file, line,
#   type, reason: no PHI). The admin runs the feeds, so she lists, re-processes and
#   dismisses items; the care coordinator may list them too, because a quarantined
#   item's payload is raw clinical data and she is the one role that reads clinical data
#   across the whole population (the clinician's access is her care team's; the page
#   shows a payload only to an unscoped role that may read clinical). Deciding whether an
#   incoming patient duplicates a known one is identity work: it needs demographics
#   write, like registration's duplicate check (front desk, coordinator, admin).
CONSOLE: Final = "console"
TABLE: Final[dict[str, dict[Resource, frozenset[Op]]]] = {
    Role.ADMIN: {
        Resource.DEMOGRAPHICS: RW,
        Resource.CONTACT: RW,
        Resource.COVERAGE: RW,
        Resource.APPOINTMENTS: RW,
        Resource.AGGREGATES: READ_ONLY,
        Resource.USERS: RW,
        Resource.CONFIG: RW,
        Resource.KEYS: RW,
        Resource.INTEGRATION: RW,
    },
    Role.FRONT_DESK: {
        Resource.DEMOGRAPHICS: RW,
        Resource.CONTACT: RW,
        Resource.COVERAGE: RW,
        Resource.APPOINTMENTS: RW,
        Resource.CONSENT: RW,
        Resource.MESSAGES: RW,
        Resource.AGGREGATES: READ_ONLY,
    },
    Role.CARE_COORDINATOR: {
        Resource.DEMOGRAPHICS: RW,
        Resource.CONTACT: RW,
        Resource.COVERAGE: RW,
        Resource.APPOINTMENTS: RW,
        # X: the care-gap recall worklist as CSV (careloop.caregaps.views.export_csv),
        # until journeys take the list in-app; password and code again, audited.
        Resource.CLINICAL: frozenset({R, X}),
        Resource.NOTES: RW,
        Resource.CONSENT: RW,
        Resource.MESSAGES: RW,
        Resource.AGGREGATES: READ_ONLY,
        Resource.INTEGRATION: READ_ONLY,
    },
    Role.CLINICIAN: {
        Resource.DEMOGRAPHICS: READ_ONLY,
        Resource.CONTACT: READ_ONLY,
        Resource.APPOINTMENTS: RW,
        Resource.CLINICAL: RW,
        Resource.NOTES: RW,
        Resource.CONSENT: READ_ONLY,
        Resource.MESSAGES: RW,
        Resource.AGGREGATES: READ_ONLY,
    },
    Role.MARKETING: {
        Resource.CONTACT: frozenset({R, X}),
        Resource.AGGREGATES: READ_ONLY,
        Resource.DEIDENTIFIED: frozenset({R, X}),
    },
    Role.ANALYST: {
        Resource.AGGREGATES: frozenset({R, X}),
        Resource.DEIDENTIFIED: frozenset({R, X}),
    },
    Role.AUDITOR: {
        Resource.AUDIT: frozenset({R, X}),
    },
    Role.PATIENT: {},
    CONSOLE: {
        Resource.DEMOGRAPHICS: WRITE_ONLY,
        Resource.CONTACT: WRITE_ONLY,
        Resource.COVERAGE: WRITE_ONLY,
        Resource.APPOINTMENTS: WRITE_ONLY,
        Resource.CLINICAL: frozenset({W, X}),
        Resource.CONSENT: WRITE_ONLY,
        Resource.AUDIT: READ_ONLY,
        Resource.USERS: RW,
        Resource.CONFIG: RW,
        Resource.KEYS: RW,
    },
}

# The declaration of a route any staff role may use (the home page; the API's OpenAPI
# document), which checks each thing it shows on its own. Routes attach what they
# declare as `careloop_permission` for the route matrix test.
ANY_STAFF: Final = "any_staff"
Declared = tuple[Op, Resource] | Literal["any_staff"]

# Routes that touch no patient or practice data, so they declare no permission: health
# checks, static files, and the sign-in steps (which check the session themselves).
# Every other route declares its permission with `careloop.core.web.staff_page` (or,
# in the API, `careloop.api.auth.endpoint_permission`); the route matrix test holds
# both to this.
PUBLIC_ROUTES: Final = frozenset(
    {
        "login",
        "logout",
        "mfa_verify",
        "mfa_enrol",
        "reauth",
        "session_status",
        "healthz",
        "readyz",
        "static",
    }
)

# Routes that a provider or a link in a message reaches without a session (SMS and voice
# webhooks, the e-mail unsubscribe link): each checks the provider's signature over the
# whole request, or the link's signed token, and answers 403 without a valid one, so
# they are neither public nor staff pages. They return no PHI (careloop.outreach.views).
SIGNED_ROUTES: Final = frozenset(
    {
        "outreach:sms_inbound",
        "outreach:sms_status",
        "outreach:voice_gather",
        "outreach:voice_status",
        "outreach:email_unsubscribe",
        # A short link in a message: its random code is the credential.
        "outreach_links:link",
        # A waitlist offer's one-click link: its random code is the credential.
        "waitlist_claim:claim",
    }
)

# Roles whose patient access is limited to their care team or location, plus
# break-the-glass (careloop.security.scope). Care coordinators are not: they work care
# gaps and referrals across the whole population, which is their job.
SCOPED_ROLES: Final = frozenset({Role.CLINICIAN})


def allowed(role: str, op: Op, resource: Resource) -> bool:
    """May `role` (or `CONSOLE`) perform `op` on `resource` at all? Unknown roles may do
    nothing."""
    return op in TABLE.get(role, {}).get(resource, frozenset())


def is_staff_role(role: str) -> bool:
    """A role that may use the staff app at all (has any permission in the table)."""
    return role in Role.values and role != Role.PATIENT and bool(TABLE[Role(role)])


def actor_allowed(actor: Actor, op: Op, resource: Resource) -> bool:
    """`allowed` for a signed-in, active user; False for anyone else."""
    return (
        isinstance(actor, User)
        and actor.is_active
        # The console row is the host operator's, never a staff account's.
        and actor.role in Role.values
        and allowed(actor.role, op, resource)
    )


def require(
    actor: Actor,
    op: Op,
    resource: Resource,
    *,
    request: HttpRequest | None = None,
    patient_id: uuid.UUID | None = None,
) -> User:
    """The actor as a `User` when the table allows `op` on `resource`.

    Otherwise records an `access.denied` audit event and raises `PermissionDenied`.
    The event names the resource (`resource_type`), the refused operation (its one
    `fields` entry) and the patient id when there is one; never a name.
    """
    if isinstance(actor, User) and actor_allowed(actor, op, resource):
        return actor
    if isinstance(actor, User) and _patient_may(actor, op, resource, patient_id):
        return actor
    role = actor.role if isinstance(actor, User) else "anonymous"
    audit_record(
        action="access.denied",
        request=request,
        actor=actor,
        patient_id=patient_id,
        resource_type=str(resource),
        fields=(str(op),),
        outcome="denied",
    )
    raise PermissionDenied(f"role {role} may not {op} {resource}")


# What a patient user (the portal) may do besides nothing: the table gives the patient
# role no row, because a patient's reach is per record, not per class of data. The
# portal's rule (careloop.portal.proxy.proxy_may) decides it: the own record, or a
# record the patient is a proxy for whose relationship allows scheduling.
PATIENT_RESOURCES: Final = frozenset({Resource.APPOINTMENTS})


def _patient_may(actor: User, op: Op, resource: Resource, patient_id: uuid.UUID | None) -> bool:
    if (
        actor.role != Role.PATIENT
        or patient_id is None
        or resource not in PATIENT_RESOURCES
        or op not in RW
    ):
        return False
    from careloop.portal.proxy import Power, proxy_may  # the portal builds on security

    return proxy_may(user=actor, patient_id=patient_id, power=Power.SCHEDULE)


def console_require(pairs: Iterable[tuple[Op, Resource]]) -> None:
    """The gate before a `careloop` command runs: the console row must allow each pair.

    The first refused pair is audited as `access.denied` by the console actor and
    raises `PermissionDenied`, as `require` does for a user.
    """
    for op, resource in pairs:
        if not allowed(CONSOLE, op, resource):
            audit_record(
                action="access.denied",
                actor=console_actor(),
                resource_type=str(resource),
                fields=(str(op),),
                outcome="denied",
            )
            raise PermissionDenied(f"the console operator may not {op} {resource}")


def require_integration(
    *,
    role: str,
    client_id: str,
    op: Op,
    resource: Resource,
    request: HttpRequest | None = None,
    patient_id: uuid.UUID | None = None,
) -> None:
    """`require` for an integration client (careloop.fhirapi) acting with a staff `role`.

    A client is not a `User`: it is registered with one staff role, whose row of the
    table bounds it, and it is audited as the integration actor `client_id`. A scoped
    role (`SCOPED_ROLES`) is refused: its patient scope is a person's care team.
    """
    if is_staff_role(role) and role not in SCOPED_ROLES and allowed(role, op, resource):
        return
    # The actor is named explicitly: a session cookie sent along must not make a staff
    # user the author of an integration's refusal.
    audit_record(
        action="access.denied",
        request=request,
        actor=AnonymousUser(),
        actor_kind=AuditEvent.ActorKind.INTEGRATION,
        actor_id=client_id,
        patient_id=patient_id,
        resource_type=str(resource),
        fields=(str(op),),
        outcome="denied",
    )
    raise PermissionDenied(f"role {role} may not {op} {resource}")


def markdown_table() -> str:
    """The table as a markdown matrix (role rows, resource columns), for docs/permissions.md."""
    letters = {Op.READ: "R", Op.WRITE: "W", Op.EXPORT: "X"}
    header = ["role", *(str(r.value) for r in Resource)]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for role, grants in TABLE.items():
        cells = [
            "".join(letters[op] for op in Op if op in grants.get(resource, frozenset())) or "·"
            for resource in Resource
        ]
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
