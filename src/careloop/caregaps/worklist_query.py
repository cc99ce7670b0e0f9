"""The worklist's SQL: which rows of a measure run an actor sees, filtered and ordered in
the database (careloop.caregaps.selectors pages and renders them).

"Last contact" is the newest outreach message to the patient that went, or is going,
out (queued, sending, sent, delivered: `CONTACT_STATUSES`); one withheld by the contact
rules, failed or bounced did not reach them. The consent filter applies the rules of
`may_contact` (careloop.consent.decisions) that stop every message whatever the
channel: deceased, do not contact. Those are set-based here; the per-channel answer
needs `may_contact` itself, so the worklist asks it for the page's rows only.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.db.models import (
    Case,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.expressions import OrderBy

from careloop.caregaps.models import GapStatus, MeasureRun, PatientMeasureResult
from careloop.consent.models import CommunicationPreference
from careloop.core import clock
from careloop.core.practice import practice_today
from careloop.outreach.models import Message, MessageStatus
from careloop.patients.models import LifecycleStage, Patient
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.permissions import Actor
from careloop.security.scope import patient_scope

# Statuses in the order a recall list works them.
STATUS_ORDER = (
    GapStatus.OVERDUE,
    GapStatus.DUE_SOON,
    GapStatus.MET,
    GapStatus.EXCLUDED,
    GapStatus.NOT_APPLICABLE,
)
# A message in one of these went, or is going, out to the patient.
CONTACT_STATUSES = (
    MessageStatus.QUEUED,
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
)
# An appointment that will happen unless someone changes it.
OPEN_APPOINTMENTS = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


class Sort:
    """Worklist orders: key -> SQL order. A leading "-" reverses. No name: encrypted."""

    DUE = "due"
    STATUS = "status"
    AGE = "age"
    CONTACT = "contact"
    KEYS = (DUE, STATUS, AGE, CONTACT)
    LABELS = {DUE: "Due date", STATUS: "Status", AGE: "Age", CONTACT: "Last contact"}

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [
            choice
            for key in cls.KEYS
            for choice in (
                (key, f"{cls.LABELS[key]} ↑"),
                (f"-{key}", f"{cls.LABELS[key]} ↓"),
            )
        ]


class ContactConsent:
    ANY = ""
    MAY_CONTACT = "may_contact"
    DO_NOT_CONTACT = "do_not_contact"
    CHOICES = (
        (ANY, "Anyone"),
        (MAY_CONTACT, "May be contacted"),
        (DO_NOT_CONTACT, "Do not contact / deceased"),
    )


@dataclass(frozen=True)
class WorklistFilter:
    """What the worklist shows: every field is class II (codes, dates, ids), so it may
    travel in a URL and be written in the audit log."""

    group: int = 1
    statuses: tuple[str, ...] = ()
    due_from: datetime.date | None = None
    due_to: datetime.date | None = None
    # Due (or lapsed) by today + N days; never-met overdue patients are due now.
    due_within_days: int | None = None
    provider_id: uuid.UUID | None = None
    location_id: uuid.UUID | None = None
    age_min: int | None = None
    age_max: int | None = None
    never_contacted: bool = False
    # No contact in the last N days (never contacted included).
    no_contact_days: int | None = None
    consent: str = ContactConsent.ANY
    # Only the patients whose care coordinator is the actor.
    mine: bool = False
    no_upcoming_visit: bool = False
    sort: str = Sort.DUE

    def describe(self) -> list[str]:
        words = [f"group={self.group}", f"sort={self.sort}"]
        if self.statuses:
            words.append("status=" + ",".join(self.statuses))
        for name in (
            "due_from",
            "due_to",
            "due_within_days",
            "provider_id",
            "location_id",
            "age_min",
            "age_max",
            "no_contact_days",
        ):
            value = getattr(self, name)
            if value is not None:
                words.append(f"{name}={value}")
        words.extend(
            name for name in ("never_contacted", "mine", "no_upcoming_visit") if getattr(self, name)
        )
        if self.consent:
            words.append(f"consent={self.consent}")
        return words


def scoped_results(
    *, actor: Actor, rows: QuerySet[PatientMeasureResult]
) -> QuerySet[PatientMeasureResult]:
    """`rows` of the patients `actor` may see (careloop.security.scope)."""
    scope = patient_scope(actor)
    # An empty Q is "everyone": no semi-join over the whole patient table for it.
    if scope:
        rows = rows.filter(patient__in=Patient.objects.filter(scope).values("pk"))
    return rows


def contacts() -> QuerySet[Message]:
    """The messages that count as contact, correlated to the outer row's patient."""
    return Message.objects.filter(patient=OuterRef("patient_id"), status__in=CONTACT_STATUSES)


def _years_before(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


def worklist_filtered(
    *, actor: Actor, run: MeasureRun, filters: WorklistFilter
) -> QuerySet[PatientMeasureResult]:
    """The run's rows the actor may see that pass `filters`, unordered."""
    today = practice_today()
    at = clock.now()
    rows = scoped_results(
        actor=actor,
        rows=PatientMeasureResult.objects.filter(
            run=run, group=filters.group, patient__merged_into__isnull=True
        ),
    )
    if filters.statuses:
        rows = rows.filter(status__in=filters.statuses)
    if filters.due_from is not None:
        rows = rows.filter(due_date__gte=filters.due_from)
    if filters.due_to is not None:
        rows = rows.filter(due_date__lte=filters.due_to)
    if filters.due_within_days is not None:
        by = today + datetime.timedelta(days=filters.due_within_days)
        rows = rows.filter(
            Q(due_date__lte=by) | Q(status=GapStatus.OVERDUE, due_date__isnull=True),
            status__in=(GapStatus.OVERDUE, GapStatus.DUE_SOON, GapStatus.MET),
        )
    if filters.provider_id is not None:
        rows = rows.filter(patient__primary_provider_id=filters.provider_id)
    if filters.location_id is not None:
        rows = rows.filter(patient__home_location_id=filters.location_id)
    # Age in whole years today: age >= n is born on or before today n years ago.
    if filters.age_min is not None:
        rows = rows.filter(patient__birth_date__lte=_years_before(today, filters.age_min))
    if filters.age_max is not None:
        rows = rows.filter(patient__birth_date__gt=_years_before(today, filters.age_max + 1))
    if filters.never_contacted:
        rows = rows.filter(~Exists(contacts()))
    if filters.no_contact_days is not None:
        since = at - datetime.timedelta(days=filters.no_contact_days)
        rows = rows.filter(~Exists(contacts().filter(created_at__gte=since)))
    if filters.consent:
        stopped = (
            Q(patient__deceased_on__isnull=False)
            | Q(patient__lifecycle_stage=LifecycleStage.DECEASED)
            | Q(
                Exists(
                    CommunicationPreference.objects.filter(
                        patient=OuterRef("patient_id"), do_not_contact=True
                    )
                )
            )
        )
        rows = rows.filter(
            stopped if filters.consent == ContactConsent.DO_NOT_CONTACT else ~stopped
        )
    if filters.mine:
        rows = rows.filter(patient__care_coordinator_id=getattr(actor, "pk", None))
    if filters.no_upcoming_visit:
        upcoming = Appointment.objects.filter(
            patient=OuterRef("patient_id"), start__gte=at, status__in=OPEN_APPOINTMENTS
        )
        rows = rows.filter(~Exists(upcoming))
    return rows


def worklist_ordered(
    *, rows: QuerySet[PatientMeasureResult], sort: str
) -> QuerySet[PatientMeasureResult]:
    """`rows` in the worklist's order `sort` (`Sort`), ties broken by row id so pages
    never overlap."""
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in Sort.KEYS:
        key, descending = Sort.DUE, False

    def by(expression: F | Subquery | Case) -> OrderBy:
        # Empty values (never met, never contacted) come first going up, last going down.
        if descending:
            return expression.desc(nulls_last=True)
        return expression.asc(nulls_first=True)

    due = by(F("due_date"))
    if key == Sort.STATUS:
        rank = Case(
            *(When(status=status, then=Value(i)) for i, status in enumerate(STATUS_ORDER)),
            default=Value(len(STATUS_ORDER)),
            output_field=IntegerField(),
        )
        order = [by(rank), F("due_date").asc(nulls_first=True)]
    elif key == Sort.AGE:
        # Older first going down: age up is birth date down.
        order = [F("patient__birth_date").asc() if descending else F("patient__birth_date").desc()]
    elif key == Sort.CONTACT:
        rows = rows.annotate(
            last_contact=Subquery(contacts().order_by("-created_at").values("created_at")[:1])
        )
        order = [by(F("last_contact")), F("due_date").asc(nulls_first=True)]
    else:
        order = [due]
    return rows.order_by(*order, "id")
