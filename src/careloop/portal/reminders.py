"""The home page's care reminders and tasks to do.

Care reminders are the patient's `due_soon` and `overdue` statuses in each measure's
current run (careloop.caregaps), in the words outreach uses after "you are due for"
(careloop.outreach.template_words.MEASURE_WORDS). The portal is the one place those
words may appear: they can name a screening or a condition.

Tasks are collected from providers, each a function `(patient, at) -> list[Task]`, so a
new kind of task is one function added to `TASK_PROVIDERS`. A provider whose app is not
installed gives nothing (`apps.is_installed`), so the home page works while the intake
app is being built or when a practice runs without it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.formats import date_format
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from careloop.caregaps.evaluate import current_runs
from careloop.caregaps.models import GapStatus, PatientMeasureResult
from careloop.consent.documents import consent_needs
from careloop.core.clock import now
from careloop.outreach.placeholders import primary_language
from careloop.outreach.template_words import MEASURE_WORDS
from careloop.patients.models import Coverage, CoverageStatus, Patient
from careloop.portal.insurance import has_current_front
from careloop.security.audit import audit_record

REMINDER_STATUSES = (GapStatus.OVERDUE, GapStatus.DUE_SOON)


@dataclass(frozen=True)
class CareReminder:
    measure_id: str
    words: str
    status: str
    due_date: datetime.date | None

    @property
    def overdue(self) -> bool:
        return self.status == GapStatus.OVERDUE


def _words(measure_id: str, language: str) -> str:
    words = MEASURE_WORDS.get(measure_id.upper())
    if words is None:
        return _("a preventive care visit")
    return words.get(primary_language(language), words["en"])


def care_reminders(*, request: HttpRequest, patient: Patient) -> list[CareReminder]:
    """What the patient is due for, overdue first; the read is audited."""
    runs = {run.pk: run for run in current_runs()}
    rows = (
        PatientMeasureResult.objects.filter(
            patient=patient, run_id__in=list(runs), status__in=REMINDER_STATUSES
        )
        .only("run_id", "status", "due_date")
        .order_by("due_date", "run_id")
    )
    language = get_language() or "en"
    seen: set[str] = set()
    reminders: list[CareReminder] = []
    for row in rows:
        measure_id = runs[row.run_id].measure
        if measure_id in seen:  # a measure with several groups: one reminder
            continue
        seen.add(measure_id)
        reminders.append(
            CareReminder(measure_id, _words(measure_id, language), row.status, row.due_date)
        )
    reminders.sort(key=lambda r: (not r.overdue, r.due_date or datetime.date.max, r.measure_id))
    if reminders:
        audit_record(
            action="patient.view",
            request=request,
            patient_id=patient.pk,
            resource_type="PatientMeasureResult",
            resource_id="care_reminders",
            fields=("care_gaps", *sorted(seen)),
        )
    return reminders


# --- tasks to do ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    kind: str  # "form", "consent", "insurance": a coded word for styling and tests
    title: str
    url: str = ""
    due: datetime.date | None = None


TaskProvider = Callable[[Patient, datetime.datetime], list[Task]]


def _url(name: str, *args: object) -> str:
    """The URL of a page another part of the portal provides, or "" until it exists."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def form_tasks(patient: Patient, at: datetime.datetime) -> list[Task]:
    """Intake forms assigned and not finished (careloop.intake, when installed)."""
    if not apps.is_installed("careloop.intake"):
        return []
    assignment = apps.get_model("intake", "FormAssignment")
    rows = (
        assignment.objects.filter(patient=patient)
        .exclude(status="completed")
        .select_related("questionnaire")
        .order_by("due", "created_at")[:20]
    )
    from careloop.intake.selectors import questionnaire_title

    tasks = []
    for row in rows:
        title = questionnaire_title(row.questionnaire)
        url = _url("intake_portal:form", row.pk) or _url("intake_portal:list")
        if row.appointment_id is not None and row.due is not None:
            # A form a visit needs: due on the visit's day, said as the visit's day.
            day = date_format(row.due, "DATE_FORMAT")
            words = _("Fill in %(title)s before your visit on %(day)s")
            tasks.append(Task(kind="form", title=words % {"title": title, "day": day}, url=url))
        else:
            words = _("Fill in the form: %(title)s") % {"title": title}
            tasks.append(Task(kind="form", title=words, url=url, due=row.due))
    return tasks


def consent_tasks(patient: Patient, at: datetime.datetime) -> list[Task]:
    """Required consent documents whose current version the patient has not signed."""
    return [
        Task(
            kind="consent",
            title=_("Sign: %(title)s") % {"title": document.title},
            url=_url("portal:consent_sign", document.kind) or _url("portal:consents"),
        )
        for document in consent_needs(patient=patient, at=at)
    ]


def insurance_tasks(patient: Patient, at: datetime.datetime) -> list[Task]:
    """No active coverage and no current front of the card on file: ask for the card,
    linking to the upload page. A card on file without coverage asks nothing more: the
    front desk enters the coverage from the card (docs/portal.md, "Insurance card")."""
    today = at.date()
    active = Coverage.objects.filter(patient=patient, status=CoverageStatus.ACTIVE).exclude(
        period_end__lt=today
    )
    if active.exists() or has_current_front(patient):
        return []
    return [
        Task(kind="insurance", title=_("Upload your insurance card"), url=_url("portal:insurance"))
    ]


TASK_PROVIDERS: list[TaskProvider] = [form_tasks, consent_tasks, insurance_tasks]


def portal_tasks(*, request: HttpRequest, patient: Patient) -> list[Task]:
    """Every provider's tasks for the patient; the read is audited."""
    at = now()
    tasks = [task for provider in TASK_PROVIDERS for task in provider(patient, at)]
    audit_record(
        action="patient.view",
        request=request,
        patient_id=patient.pk,
        resource_type="portal_tasks",
        fields=tuple(sorted({task.kind for task in tasks})),
    )
    return tasks
