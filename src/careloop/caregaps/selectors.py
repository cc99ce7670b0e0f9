"""Read paths for care gaps: the measures overview, the recall worklist and its CSV rows.

Everything reads the measures' current runs (`careloop.caregaps.evaluate.current_runs`)
and is set-based: filters, sorting and paging are SQL over `PatientMeasureResult`
(indexed by run, status and due date) joined to the patient, so a page costs the same
at 100 patients and at 1,000,000. Only the rows on the page are decrypted (names) and
asked `may_contact` (the contact column). Names are encrypted, so the worklist cannot be
sorted by name in SQL; it says so rather than decrypting the whole run.

The SQL (filters, order, what "last contact" and the consent filter mean) is in
careloop.caregaps.worklist_query; the cards are in careloop.caregaps.cards.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.paginator import Paginator
from django.db.models import Count, Exists, Max, OuterRef, QuerySet, Subquery

from careloop.caregaps.evaluate import current_runs
from careloop.caregaps.measure import Measure, measures
from careloop.caregaps.models import GapStatus, MeasureRun, PatientMeasureResult
from careloop.caregaps.texts import gap_why, reason_label
from careloop.caregaps.worklist_query import (
    CONTACT_STATUSES,
    STATUS_ORDER,
    WorklistFilter,
    contacts,
    scoped_results,
    worklist_filtered,
    worklist_ordered,
)
from careloop.consent.decisions import may_contact
from careloop.consent.models import Channel, CommunicationPreference, ContentClass, Purpose
from careloop.core import clock
from careloop.core.errors import NotFound
from careloop.core.practice import age_on, practice_today
from careloop.outreach.models import Message
from careloop.patients.models import LifecycleStage, Patient
from careloop.security.audit import audit_record
from careloop.security.permissions import Actor, Op, Resource, require

PAGE_SIZE = 25
# Channels the contact column asks `may_contact` about, for a care reminder.
REMINDER_CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.VOICE)
# What a worklist row and an export row show, as the audit log records it.
ROW_FIELDS = (
    "name",
    "birth_date",
    "gap_status",
    "due_date",
    "reason",
    "last_contact",
    "contact_consent",
)
CSV_COLUMNS = (
    "patient_id",
    "family_name",
    "given_name",
    "birth_date",
    "age",
    "measure",
    "group",
    "status",
    "due_date",
    "reason",
    "last_contact",
    "contact_allowed",
)


# --- the measures overview --------------------------------------------------------------


@dataclass(frozen=True)
class GroupCounts:
    group: int
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ordered(self) -> list[tuple[str, str, int]]:
        return [(str(s), str(s.label), self.counts.get(s, 0)) for s in STATUS_ORDER]


@dataclass(frozen=True)
class MeasureSummary:
    measure: Measure
    run: MeasureRun | None
    groups: list[GroupCounts]


def current_run(measure_id: str) -> MeasureRun | None:
    return next((run for run in current_runs() if run.measure == measure_id), None)


def caregaps_overview(*, actor: Actor) -> list[MeasureSummary]:
    """Per measure (every one in the registry), its current run and the count of the
    actor's patients in each status, per group: one GROUP BY over the current runs."""
    user = require(actor, Op.READ, Resource.CLINICAL)
    runs = {run.measure: run for run in current_runs()}
    counted = (
        scoped_results(
            actor=user, rows=PatientMeasureResult.objects.filter(run__in=list(runs.values()))
        )
        .order_by()
        .values_list("run_id", "group", "status")
        .annotate(n=Count("id"))
    )
    counts: dict[tuple[int, int], dict[str, int]] = {}
    for run_id, group, status, n in counted:
        counts.setdefault((run_id, group), {})[status] = n
    summaries = []
    for measure in measures().values():
        run = runs.get(measure.id)
        groups = [
            GroupCounts(number, counts.get((run.pk, number), {}) if run else {})
            for number in range(1, len(measure.groups) + 1)
        ]
        summaries.append(MeasureSummary(measure=measure, run=run, groups=groups))
    audit_record(
        action="patient.list",
        actor=user,
        resource_type="MeasureRun",
        resource_id="caregaps:overview",
        fields=("gap_status_counts",),
    )
    return summaries


# --- the worklist -----------------------------------------------------------------------


@dataclass(frozen=True)
class ContactAnswer:
    """`may_contact` for a care reminder, per channel: the channels that may carry one
    (now, or after quiet hours or a cap), else the first channel's reason."""

    channels: list[str]
    reason: str

    @property
    def allowed(self) -> bool:
        return bool(self.channels)


def contact_answer(*, patient: Patient, at: datetime.datetime) -> ContactAnswer:
    channels: list[str] = []
    reasons: list[str] = []
    for channel in REMINDER_CHANNELS:
        decision = may_contact(patient, channel, Purpose.CARE_REMINDER, ContentClass.GENERIC, at)
        if decision.allowed or decision.retry_at is not None:
            channels.append(str(channel.label))
        else:
            reasons.append(str(decision.reason).replace("_", " "))
    return ContactAnswer(channels=channels, reason=reasons[0] if reasons else "")


@dataclass(frozen=True)
class WorklistRow:
    patient_id: uuid.UUID
    family_name: str
    given_name: str
    birth_date: datetime.date
    age: int
    status: str
    status_label: str
    due_date: datetime.date | None
    reason: str
    why: str
    last_contact: datetime.datetime | None
    contact: ContactAnswer


@dataclass(frozen=True)
class WorklistPage:
    measure: Measure
    run: MeasureRun | None
    filters: WorklistFilter
    rows: list[WorklistRow] = field(default_factory=list)
    number: int = 1
    num_pages: int = 1
    total: int = 0

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def first_index(self) -> int:
        return (self.number - 1) * PAGE_SIZE + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1 if self.rows else 0


def caregaps_measure_get(*, measure_id: str) -> Measure:
    """The registered measure (any case), or `NotFound`."""
    found = measures().get(measure_id.upper())
    if found is None:
        raise NotFound
    return found


def _patient_columns(rows: QuerySet[PatientMeasureResult]) -> QuerySet[PatientMeasureResult]:
    """The patient columns a row shows or `may_contact` reads; the rest stay unread."""
    return rows.select_related("patient").only(
        "id",
        "run_id",
        "group",
        "status",
        "due_date",
        "reason",
        "patient__id",
        "patient__given_name",
        "patient__family_name",
        "patient__birth_date",
        "patient__time_zone",
        "patient__deceased_on",
        "patient__lifecycle_stage",
    )


def caregaps_worklist(
    *,
    actor: Actor,
    measure_id: str,
    filters: WorklistFilter,
    page: int | str | None = 1,
) -> WorklistPage:
    """One page of the measure's current run for the actor, filtered and sorted in SQL.

    `NotFound` for an unknown measure; a page without rows when the measure has no
    current run yet. The list is audited like the patient list (what it showed, never
    a name).
    """
    user = require(actor, Op.READ, Resource.CLINICAL)
    measure = caregaps_measure_get(measure_id=measure_id)
    run = current_run(measure.id)
    if run is None:
        return WorklistPage(measure=measure, run=None, filters=filters)
    rows = worklist_ordered(
        rows=worklist_filtered(actor=user, run=run, filters=filters), sort=filters.sort
    )
    paginator = Paginator(_patient_columns(rows), PAGE_SIZE)
    current = paginator.get_page(page)
    results: list[PatientMeasureResult] = list(current.object_list)
    last = dict(
        Message.objects.filter(
            patient_id__in=[r.patient_id for r in results], status__in=CONTACT_STATUSES
        )
        .order_by()
        .values_list("patient_id")
        .annotate(at=Max("created_at"))
    )
    today, at = practice_today(), clock.now()
    shown = [
        WorklistRow(
            patient_id=r.patient_id,
            family_name=r.patient.family_name,
            given_name=r.patient.given_name,
            birth_date=r.patient.birth_date,
            age=age_on(r.patient.birth_date, today),
            status=r.status,
            status_label=str(GapStatus(r.status).label) if r.status else "",
            due_date=r.due_date,
            reason=reason_label(r.reason),
            why=gap_why(
                measure_id=measure.id,
                group=r.group,
                status=r.status,
                due_date=r.due_date,
                reason=r.reason,
            ),
            last_contact=last.get(r.patient_id),
            contact=contact_answer(patient=r.patient, at=at),
        )
        for r in results
    ]
    audit_record(
        action="patient.list",
        actor=user,
        resource_type="PatientMeasureResult",
        resource_id=f"{measure.id}:run={run.pk}:page={current.number}:shown={len(shown)}",
        fields=(*ROW_FIELDS, *filters.describe()),
    )
    return WorklistPage(
        measure=measure,
        run=run,
        filters=filters,
        rows=shown,
        number=current.number,
        num_pages=paginator.num_pages,
        total=paginator.count,
    )


def caregaps_worklist_export(
    *, actor: Actor, measure_id: str, filters: WorklistFilter
) -> Iterator[list[str]]:
    """Every row the worklist's filters select, in its order, as CSV values (the header
    first), streamed. Audited as an export before the first row."""
    user = require(actor, Op.EXPORT, Resource.CLINICAL)
    require(user, Op.READ, Resource.DEMOGRAPHICS)
    measure = caregaps_measure_get(measure_id=measure_id)
    run = current_run(measure.id)
    rows = (
        worklist_ordered(
            rows=worklist_filtered(actor=user, run=run, filters=filters), sort=filters.sort
        )
        if run is not None
        else PatientMeasureResult.objects.none()
    )
    stopped = Exists(
        CommunicationPreference.objects.filter(patient=OuterRef("patient_id"), do_not_contact=True)
    )
    rows = _patient_columns(rows).annotate(
        exported_contact=Subquery(contacts().order_by("-created_at").values("created_at")[:1]),
        do_not_contact=stopped,
    )
    total = rows.count()
    audit_record(
        action="export.csv",
        actor=user,
        resource_type="PatientMeasureResult",
        resource_id=f"{measure.id}:run={run.pk if run else '-'}:rows={total}",
        fields=(*CSV_COLUMNS, *filters.describe()),
    )
    return _csv_rows(rows, measure.id)


def _csv_rows(rows: QuerySet[PatientMeasureResult], measure_id: str) -> Iterator[list[str]]:
    today = practice_today()
    yield list(CSV_COLUMNS)
    for r in rows.iterator(chunk_size=2000):
        patient = r.patient
        contacted = getattr(r, "exported_contact", None)
        allowed = not (
            getattr(r, "do_not_contact", False)
            or patient.deceased_on is not None
            or patient.lifecycle_stage == LifecycleStage.DECEASED
        )
        yield [
            str(r.patient_id),
            patient.family_name,
            patient.given_name,
            patient.birth_date.isoformat(),
            str(age_on(patient.birth_date, today)),
            measure_id,
            str(r.group),
            r.status,
            r.due_date.isoformat() if r.due_date else "",
            r.reason,
            contacted.isoformat() if contacted else "",
            "yes" if allowed else "no",
        ]


def caregaps_worklist_patient_ids(
    *, actor: Actor, measure_id: str, filters: WorklistFilter
) -> list[uuid.UUID]:
    """The patients the worklist's filters select (all pages), for a bulk action."""
    user = require(actor, Op.READ, Resource.CLINICAL)
    measure = caregaps_measure_get(measure_id=measure_id)
    run = current_run(measure.id)
    if run is None:
        return []
    rows = worklist_filtered(actor=user, run=run, filters=filters)
    return list(dict.fromkeys(rows.values_list("patient_id", flat=True)))
