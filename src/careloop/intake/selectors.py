"""Reads of the intake app: the patient's forms (portal), a patient's responses (staff,
role-checked, scoped and audited), and the survey figures (aggregates, in SQL)."""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.utils.translation import get_language

from careloop.core.errors import NotFound
from careloop.intake.answers import answers_from_response, display_text
from careloop.intake.definition import Item, questionnaire_from_dict, title_in_language, walk
from careloop.intake.models import (
    AssignmentStatus,
    FormAssignment,
    Questionnaire,
    QuestionnaireResponse,
    ResponseStatus,
    ScoreKind,
)
from careloop.patients.models import Patient
from careloop.patients.selectors import patient_get
from careloop.security.audit import audit_record
from careloop.security.permissions import Actor, Op, Resource, require

# --- the portal: always from the signed-in patient's own record ------------------------


def portal_assignments(*, patient: Patient) -> tuple[list[FormAssignment], list[FormAssignment]]:
    """The forms to fill (oldest due first) and the last completed ones."""
    rows = FormAssignment.objects.filter(patient=patient).select_related("questionnaire")
    open_rows = list(rows.exclude(status=AssignmentStatus.COMPLETED).order_by("due", "created_at"))
    done = list(rows.filter(status=AssignmentStatus.COMPLETED).order_by("-completed_at")[:10])
    return open_rows, done


def portal_assignment(*, patient: Patient, assignment_id: uuid.UUID) -> FormAssignment:
    """One of the patient's own assignments; `NotFound` for anybody else's."""
    try:
        return FormAssignment.objects.select_related("questionnaire").get(
            pk=assignment_id, patient=patient
        )
    except FormAssignment.DoesNotExist:
        raise NotFound from None


def questionnaire_title(questionnaire: Questionnaire, language: str | None = None) -> str:
    """The title as a patient reading `language` (the active language by default) sees
    it: its translation when the questionnaire has one, else the title itself."""
    return title_in_language(
        questionnaire.definition, questionnaire.title, language or get_language() or "en"
    )


def saved_answers(*, assignment: FormAssignment) -> dict[str, Any]:
    response = QuestionnaireResponse.objects.filter(assignment=assignment).first()
    if response is None:
        return {}
    return answers_from_response(json.loads(response.answers))


# --- staff --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerRow:
    text: str
    answers: list[str]
    depth: int


@dataclass(frozen=True)
class ResponseView:
    response: QuestionnaireResponse
    rows: list[AnswerRow]


def _readable(actor: Actor, patient_id: uuid.UUID) -> Patient:
    user = require(actor, Op.READ, Resource.CLINICAL, patient_id=patient_id)
    return patient_get(actor=user, patient_id=patient_id)


def patient_responses(
    *, actor: Actor, patient_id: uuid.UUID
) -> tuple[Patient, list[QuestionnaireResponse]]:
    """The patient and their responses, newest first. An audited read."""
    patient = _readable(actor, patient_id)
    responses = list(
        QuestionnaireResponse.objects.filter(patient=patient)
        .select_related("questionnaire")
        .order_by("-authored")
    )
    audit_record(
        action="intake.response_view",
        actor=actor,
        patient_id=patient.pk,
        resource_type="QuestionnaireResponse",
        fields=["list"],
    )
    return patient, responses


def _rows(items: tuple[Item, ...], answers: dict[str, Any], depth: int = 0) -> list[AnswerRow]:
    rows = []
    for item in items:
        if item.type == "group":
            children = _rows(item.items, answers, depth + 1)
            if children:
                rows.append(AnswerRow(item.text, [], depth))
                rows.extend(children)
        elif item.is_question and answers.get(item.link_id):
            rows.append(
                AnswerRow(item.text, [display_text(item, v) for v in answers[item.link_id]], depth)
            )
    return rows


def response_get(
    *, actor: Actor, patient_id: uuid.UUID, response_id: uuid.UUID, export: bool = False
) -> tuple[Patient, ResponseView]:
    """One response of the patient's, with its answers; audited (`fhir.export` for the
    FHIR download, `intake.response_view` for the page)."""
    patient = _readable(actor, patient_id)
    try:
        response = QuestionnaireResponse.objects.select_related("questionnaire").get(
            pk=response_id, patient=patient
        )
    except QuestionnaireResponse.DoesNotExist:
        raise NotFound from None
    audit_record(
        action="fhir.export" if export else "intake.response_view",
        actor=actor,
        patient_id=patient.pk,
        resource_type="QuestionnaireResponse",
        resource_id=str(response.pk),
        fields=["answers"],
    )
    items = questionnaire_from_dict(response.questionnaire.definition).items
    answers = answers_from_response(json.loads(response.answers))
    rows = _rows(items, answers)
    known = {i.link_id for i in walk(items)}
    # Answers to questions the editor has since removed still show, by their own text.
    for entry in json.loads(response.answers).get("item") or []:
        if entry.get("linkId") not in known and entry.get("answer"):
            rows.append(AnswerRow(str(entry.get("text", entry["linkId"])), ["(answered)"], 0))
    return patient, ResponseView(response, rows)


# --- survey figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    label: str
    csat_count: int
    csat_average: float | None
    nps_count: int
    promoters: int
    detractors: int

    @property
    def nps(self) -> int | None:
        if not self.nps_count:
            return None
        return round(100 * (self.promoters - self.detractors) / self.nps_count)


@dataclass(frozen=True)
class Figures:
    total: Figure
    by_provider: list[Figure]
    by_location: list[Figure]


_AGGREGATES: dict[str, Any] = {
    "csat_count": Count("id", filter=Q(score_kind=ScoreKind.CSAT)),
    "csat_average": Avg("score", filter=Q(score_kind=ScoreKind.CSAT)),
    "nps_count": Count("id", filter=Q(score_kind=ScoreKind.NPS)),
    "promoters": Count("id", filter=Q(score_kind=ScoreKind.NPS, score__gte=9)),
    "detractors": Count("id", filter=Q(score_kind=ScoreKind.NPS, score__lte=6)),
}


def _figure(label: str, row: dict[str, Any]) -> Figure:
    average = row["csat_average"]
    return Figure(
        label=label or "—",
        csat_count=row["csat_count"],
        csat_average=round(float(average), 2) if average is not None else None,
        nps_count=row["nps_count"],
        promoters=row["promoters"],
        detractors=row["detractors"],
    )


def survey_figures(*, actor: Actor, start: datetime.datetime, end: datetime.datetime) -> Figures:
    """CSAT average and NPS per provider and per location, over completed responses in
    [start, end): grouped in SQL over the plain score columns, nothing decrypted."""
    require(actor, Op.READ, Resource.AGGREGATES)
    scored: QuerySet[QuestionnaireResponse] = QuestionnaireResponse.objects.filter(
        status=ResponseStatus.COMPLETED,
        score__isnull=False,
        completed_at__gte=start,
        completed_at__lt=end,
    ).order_by()
    total = _figure("All", scored.aggregate(**_AGGREGATES))
    providers = [
        _figure(row["provider__display_name"], row)
        for row in scored.values("provider__display_name")
        .annotate(**_AGGREGATES)
        .order_by("provider__display_name")
    ]
    locations = [
        _figure(row["location__name"], row)
        for row in scored.values("location__name")
        .annotate(**_AGGREGATES)
        .order_by("location__name")
    ]
    return Figures(total=total, by_provider=providers, by_location=locations)
