"""Who looked at my record: the patient's accounting of disclosures, from the audit log.

One page is one query on the audit table, by the patient id (indexed), newest first,
optionally within dates; the people and reasons it names are looked up afterwards by
the ids on that page only. What counts: every successful event about the record by
anyone (staff, jobs, integrations, the patient and their proxies) except sign-ins,
refusals, and the patient's own reading of this very report. Reading the report is
itself audited (`audit.search`, fields `disclosures`), as the auditor's view is.

Staff appear by full name (else username) and the role they hold today: an event
records who, not which role they had. Nothing about another patient is ever read: the
query is bound to the one patient id the portal resolved for the signed-in account.
"""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from dataclasses import dataclass

from django.db.models import Q
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount
from careloop.security.audit import audit_record
from careloop.security.models import AuditEvent, AuditReason, Role, User

PAGE_SIZE = 25
# Events that are not someone opening or changing the record.
HIDDEN_ACTIONS = ("access.denied", "auth.login", "auth.login_failed", "auth.logout")

# The verb of an action, by its last word (after the dot); others read "Used".
VERBS = {
    "view": gettext_lazy("Viewed"),
    "list": gettext_lazy("Viewed in a list"),
    "search": gettext_lazy("Found in a search"),
    "read": gettext_lazy("Viewed"),
    "timeline_view": gettext_lazy("Viewed"),
    "notes_view": gettext_lazy("Viewed"),
    "quarantine_view": gettext_lazy("Viewed"),
    "match_view": gettext_lazy("Viewed"),
    "create": gettext_lazy("Created"),
    "update": gettext_lazy("Changed"),
    "write": gettext_lazy("Changed"),
    "record": gettext_lazy("Recorded"),
    "merge": gettext_lazy("Merged duplicate records"),
    "note_add": gettext_lazy("Added a note"),
    "note_edit": gettext_lazy("Edited a note"),
    "export": gettext_lazy("Exported"),
    "csv": gettext_lazy("Exported"),
    "ndjson": gettext_lazy("Exported"),
    "import": gettext_lazy("Received from the EHR"),
    "sync": gettext_lazy("Received from the EHR"),
    "receive": gettext_lazy("Received"),
    "enqueue": gettext_lazy("Prepared a message"),
    "send": gettext_lazy("Sent a message"),
    "book": gettext_lazy("Booked"),
    "reschedule": gettext_lazy("Rescheduled"),
    "cancel": gettext_lazy("Cancelled"),
    "confirm": gettext_lazy("Confirmed"),
    "check_in": gettext_lazy("Checked in"),
    "complete": gettext_lazy("Completed"),
    "no_show": gettext_lazy("Marked as missed"),
    "break_glass": gettext_lazy("Emergency access"),
    "evaluate": gettext_lazy("Checked care reminders"),
    "enroll": gettext_lazy("Started a reminder series"),
    "exit": gettext_lazy("Ended a reminder series"),
    "proxy_access": gettext_lazy("Acted for you as a proxy"),
    "relationship_add": gettext_lazy("Added a caregiver"),
    "relationship_end": gettext_lazy("Ended a caregiver's access"),
}
# What the event was about, by resource type (case-insensitive); others read "your record".
NOUNS = {
    "patient": gettext_lazy("your record"),
    "appointment": gettext_lazy("appointments"),
    "consent": gettext_lazy("consents"),
    "consent_document": gettext_lazy("consents"),
    "communication_preferences": gettext_lazy("communication preferences"),
    "push_subscription": gettext_lazy("push notifications"),
    "patientnote": gettext_lazy("notes"),
    "contactpoint": gettext_lazy("contact details"),
    "coverage": gettext_lazy("insurance"),
    "patientrelationship": gettext_lazy("caregivers"),
    "message": gettext_lazy("messages"),
    "inbound_message": gettext_lazy("messages"),
    "thread": gettext_lazy("secure messages"),
    "enrollment": gettext_lazy("reminders"),
    "patientmeasureresult": gettext_lazy("care reminders"),
    "encounter": gettext_lazy("visits"),
    "medication": gettext_lazy("medications"),
    "auditevent": gettext_lazy("the access log of your record"),
    "bundle": gettext_lazy("your record"),
    "questionnaire_response": gettext_lazy("forms"),
    "proxy_for": gettext_lazy("your record"),
}


@dataclass(frozen=True)
class DisclosureLine:
    at: datetime.datetime
    who: str
    role: str
    what: str
    why: str


@dataclass(frozen=True)
class DisclosurePage:
    lines: list[DisclosureLine]
    page: int
    has_next: bool


def _what(action: str, resource_type: str) -> str:
    verb = VERBS.get(action.split(".", 1)[-1], gettext_lazy("Used"))
    noun = NOUNS.get(resource_type.lower(), gettext_lazy("your record"))
    return _("%(verb)s: %(what)s") % {"verb": verb, "what": noun}


def _patient_names(user_ids: set[int]) -> dict[int, tuple[uuid.UUID, str]]:
    """The patient record and full name behind each patient user (portal account)."""
    names = {}
    for account in PortalAccount.objects.filter(user_id__in=user_ids).select_related("patient"):
        patient = account.patient
        name = f"{patient.preferred_name or patient.given_name} {patient.family_name}"
        names[account.user_id] = (patient.pk, name)
    return names


def _who(
    row: dict[str, object],
    *,
    viewer: User,
    patient: Patient,
    staff: dict[int, User],
    patients: dict[int, tuple[uuid.UUID, str]],
) -> tuple[str, str]:
    kind, actor_id = str(row["actor_kind"]), str(row["actor_id"])
    number = int(actor_id) if actor_id.isdigit() else None
    if kind == AuditEvent.ActorKind.USER:
        user = staff.get(number) if number is not None else None
        if user is None:
            return str(row["actor_label"]) or _("A former staff member"), _("Staff")
        name = user.get_full_name() or user.username
        return name, str(dict(Role.choices).get(user.role, _("Staff")))
    if kind == AuditEvent.ActorKind.PATIENT:
        if number == viewer.pk:
            return _("You"), ""
        own_patient, name = patients.get(number, (None, "")) if number is not None else (None, "")
        if own_patient == patient.pk:
            return name or _("The patient"), _("Patient")
        return _("Your proxy %(name)s") % {"name": name} if name else _("A proxy"), _("Proxy")
    if kind == AuditEvent.ActorKind.INTEGRATION:
        return _("A connected system (%(client)s)") % {"client": actor_id}, _("Integration")
    if kind == AuditEvent.ActorKind.SYSTEM:
        return _("careloop, automatically"), _("System")
    return _("Someone not signed in"), ""


def portal_disclosures(
    *,
    request: HttpRequest | None,
    viewer: User,
    patient: Patient,
    since: datetime.date | None = None,
    until: datetime.date | None = None,
    page: int = 1,
) -> DisclosurePage:
    """One page of who accessed `patient`'s record, newest first; the read is audited.

    `patient` is the record the portal resolved for `viewer` (own, or as a proxy);
    `since` and `until` are days in the patient's zone, both included.
    """
    page = max(page, 1)
    zone = zoneinfo.ZoneInfo(patient.time_zone)
    events = (
        AuditEvent.objects.filter(patient_id=patient.pk, outcome=AuditEvent.Outcome.SUCCESS)
        .exclude(action__in=HIDDEN_ACTIONS)
        .exclude(Q(actor_kind=AuditEvent.ActorKind.PATIENT) & Q(resource_type="AuditEvent"))
    )
    if since is not None:
        events = events.filter(at__gte=datetime.datetime.combine(since, datetime.time(), zone))
    if until is not None:
        end = datetime.datetime.combine(until + datetime.timedelta(days=1), datetime.time(), zone)
        events = events.filter(at__lt=end)
    start = (page - 1) * PAGE_SIZE
    columns = ("id", "at", "actor_kind", "actor_id", "actor_label", "action", "resource_type")
    rows = list(
        events.order_by("-at", "-id").values(*columns, "reason_digest")[
            start : start + PAGE_SIZE + 1
        ]
    )
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    audit_record(
        action="audit.search",
        request=request,
        actor=viewer,
        patient_id=patient.pk,
        resource_type="AuditEvent",
        fields=["disclosures"],
    )
    kinds = AuditEvent.ActorKind
    ids = {
        kind: {
            int(r["actor_id"]) for r in rows if r["actor_kind"] == kind and r["actor_id"].isdigit()
        }
        for kind in (kinds.USER, kinds.PATIENT)
    }
    staff = {u.pk: u for u in User.objects.filter(pk__in=ids[kinds.USER])}
    patients = _patient_names(ids[kinds.PATIENT])
    with_reason = [r["id"] for r in rows if r["reason_digest"]]
    reasons = {
        reason.event_id: reason.text
        for reason in AuditReason.objects.filter(event_id__in=with_reason)
    }
    lines = []
    for row in rows:
        who, role = _who(row, viewer=viewer, patient=patient, staff=staff, patients=patients)
        lines.append(
            DisclosureLine(
                at=row["at"],
                who=who,
                role=role,
                what=_what(str(row["action"]), str(row["resource_type"])),
                why=reasons.get(row["id"], ""),
            )
        )
    return DisclosurePage(lines=lines, page=page, has_next=has_next)
