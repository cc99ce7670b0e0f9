"""Staff pages: questionnaires (import, simple editor, settings; admin), a patient's
responses and their FHIR export (clinical read, scoped, audited), and the survey
figures (aggregates)."""

from __future__ import annotations

import datetime
import json
import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from careloop.core.errors import NotFound, PermissionDenied
from careloop.core.practice import practice_today, practice_zone
from careloop.core.web import staff_page
from careloop.intake.definition import (
    QuestionnaireInvalid,
    questionnaire_from_dict,
    questionnaire_parse,
    walk,
)
from careloop.intake.editor import (
    EDITOR_TYPES,
    EditorRow,
    definition_from_rows,
    is_simple,
    rows_from_items,
    rows_from_post,
)
from careloop.intake.models import Purpose, Questionnaire, QuestionnaireStatus, ScoreKind
from careloop.intake.profile_mapping import FIELDS
from careloop.intake.selectors import patient_responses, response_get, survey_figures
from careloop.intake.services import (
    Settings,
    builtin_install,
    questionnaire_definition_set,
    questionnaire_import,
    questionnaire_items,
    questionnaire_settings_set,
)
from careloop.scheduling.models import AppointmentType
from careloop.security.models import User
from careloop.security.permissions import Op, Resource

FORM_METHODS = ["GET", "HEAD", "POST"]


def _staff(request: HttpRequest) -> User:
    """The signed-in staff user (`staff_page` let only an allowed user through)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


UPLOAD_LIMIT = 512 * 1024


@require_http_methods(FORM_METHODS)
@staff_page(Op.WRITE, Resource.CONFIG)
def questionnaires(request: HttpRequest) -> HttpResponse:
    """The list, and the upload of a Questionnaire JSON file."""
    errors: list[str] = []
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            errors = ["Choose a Questionnaire JSON file to upload."]
        elif upload.size is not None and upload.size > UPLOAD_LIMIT:
            errors = ["That file is larger than 512 KB: is it really one Questionnaire?"]
        else:
            try:
                parsed = questionnaire_parse(upload.read())
                purpose = request.POST.get("purpose", Purpose.INTAKE)
                questionnaire = questionnaire_import(
                    actor=_staff(request), parsed=parsed, purpose=purpose
                )
            except QuestionnaireInvalid as invalid:
                errors = invalid.errors
            else:
                messages.success(request, f"Imported “{questionnaire.title}”.")
                return HttpResponseRedirect(reverse("intake:edit", args=[questionnaire.pk]))
    builtin_install()
    context = {
        "questionnaires": Questionnaire.objects.all(),
        "errors": errors,
        "purposes": Purpose.choices,
    }
    return render(request, "intake/staff/questionnaires.html", context)


def _settings_context(questionnaire: Questionnaire) -> dict[str, object]:
    items = questionnaire_items(questionnaire)
    questions = [item for item in walk(items) if item.is_question]
    return {
        "questions": questions,
        "scorable": [q for q in questions if q.type in ("choice", "integer")],
        "fields": FIELDS,
        "purposes": Purpose.choices,
        "statuses": QuestionnaireStatus.choices,
        "score_kinds": ScoreKind.choices,
        "appointment_types": AppointmentType.objects.order_by("name"),
    }


def _editor_page(
    request: HttpRequest,
    questionnaire: Questionnaire | None,
    rows: list[EditorRow],
    errors: list[str],
    title: str,
    status: int = 200,
) -> HttpResponse:
    context: dict[str, object] = {
        "questionnaire": questionnaire,
        "rows": rows,
        "row_count": len(rows),
        "title": title,
        "errors": errors,
        "types": EDITOR_TYPES,
        "simple": True,
    }
    if questionnaire is not None:
        context.update(_settings_context(questionnaire))
        context["simple"] = is_simple(questionnaire_items(questionnaire))
        context["json"] = json.dumps(questionnaire.definition, indent=2)
    return render(request, "intake/staff/edit.html", context, status=status)


@require_http_methods(FORM_METHODS)
@staff_page(Op.WRITE, Resource.CONFIG)
def questionnaire_new(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _editor_page(request, None, rows_from_items(()), [], "")
    title = request.POST.get("title", "").strip()[:200]
    rows = rows_from_post(request.POST)
    try:
        parsed = questionnaire_from_dict(
            definition_from_rows(title=title, url="", version="1", status="active", rows=rows)
        )
        questionnaire = questionnaire_import(actor=_staff(request), parsed=parsed)
    except QuestionnaireInvalid as invalid:
        return _editor_page(request, None, rows + rows_from_items(()), invalid.errors, title)
    messages.success(request, f"Created “{questionnaire.title}”.")
    return HttpResponseRedirect(reverse("intake:edit", args=[questionnaire.pk]))


def _settings_from_post(request: HttpRequest, questionnaire: Questionnaire) -> Settings:
    data = request.POST
    mapping = {
        item.link_id: data.get(f"map-{item.link_id}", "")
        for item in walk(questionnaire_items(questionnaire))
        if item.is_question and data.get(f"map-{item.link_id}", "")
    }
    return Settings(
        purpose=data.get("purpose", ""),
        status=data.get("status", ""),
        required_for_types=[
            code
            for code in data.getlist("required_for_types")
            if AppointmentType.objects.filter(code=code).exists()
        ],
        post_visit=data.get("post_visit") == "on",
        score_kind=data.get("score_kind", ""),
        score_link_id=data.get("score_link_id", ""),
        mapping=mapping,
    )


@require_http_methods(FORM_METHODS)
@staff_page(Op.WRITE, Resource.CONFIG)
def questionnaire_edit(request: HttpRequest, questionnaire_id: uuid.UUID) -> HttpResponse:
    questionnaire = Questionnaire.objects.filter(pk=questionnaire_id).first()
    if questionnaire is None:
        raise NotFound
    items = questionnaire_items(questionnaire)
    if request.method != "POST":
        return _editor_page(request, questionnaire, rows_from_items(items), [], questionnaire.title)
    errors: list[str] = []
    if request.POST.get("part") == "settings":
        try:
            questionnaire_settings_set(
                actor=_staff(request),
                questionnaire=questionnaire,
                settings=_settings_from_post(request, questionnaire),
            )
        except QuestionnaireInvalid as invalid:
            errors = invalid.errors
        rows = rows_from_items(items)
        title = questionnaire.title
    else:
        title = request.POST.get("title", "").strip()[:200]
        rows = rows_from_post(request.POST)
        if not is_simple(items):
            errors = [
                "This questionnaire has groups or conditions: import a new version of its JSON."
            ]
        else:
            try:
                parsed = questionnaire_from_dict(
                    definition_from_rows(
                        title=title,
                        url=questionnaire.url,
                        version=questionnaire.version,
                        status=questionnaire.status,
                        rows=rows,
                        earlier=frozenset(item.link_id for item in walk(items)),
                    )
                )
                questionnaire_definition_set(
                    actor=_staff(request), questionnaire=questionnaire, parsed=parsed
                )
            except QuestionnaireInvalid as invalid:
                errors = invalid.errors
        rows = rows + rows_from_items(())
    if errors:
        return _editor_page(request, questionnaire, rows, errors, title)
    messages.success(request, "Saved.")
    return HttpResponseRedirect(reverse("intake:edit", args=[questionnaire.pk]))


@require_safe
@staff_page(Op.READ, Resource.CLINICAL)
def patient_forms(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    patient, responses = patient_responses(actor=_staff(request), patient_id=patient_id)
    return render(
        request, "intake/staff/patient_forms.html", {"p": patient, "responses": responses}
    )


@require_safe
@staff_page(Op.READ, Resource.CLINICAL)
def response_detail(
    request: HttpRequest, patient_id: uuid.UUID, response_id: uuid.UUID
) -> HttpResponse:
    patient, view = response_get(
        actor=_staff(request), patient_id=patient_id, response_id=response_id
    )
    return render(request, "intake/staff/response.html", {"p": patient, "view": view})


@require_safe
@staff_page(Op.READ, Resource.CLINICAL)
def response_fhir(
    request: HttpRequest, patient_id: uuid.UUID, response_id: uuid.UUID
) -> HttpResponse:
    """The QuestionnaireResponse as FHIR JSON (a download, audited as `fhir.export`)."""
    _patient, view = response_get(
        actor=_staff(request), patient_id=patient_id, response_id=response_id, export=True
    )
    response = HttpResponse(view.response.answers, content_type="application/fhir+json")
    response["Content-Disposition"] = (
        f'attachment; filename="QuestionnaireResponse-{view.response.pk}.json"'
    )
    response["Cache-Control"] = "no-store"
    return response


def _day(text: str, default: datetime.date) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return default


@require_safe
@staff_page(Op.READ, Resource.AGGREGATES)
def surveys(request: HttpRequest) -> HttpResponse:
    """CSAT and NPS per provider and per location over a date range (the practice's days)."""
    today = practice_today()
    start = _day(request.GET.get("start", ""), today - datetime.timedelta(days=90))
    end = _day(request.GET.get("end", ""), today)
    if end < start:
        start, end = end, start
    zone = practice_zone()
    figures = survey_figures(
        actor=_staff(request),
        start=datetime.datetime.combine(start, datetime.time(), tzinfo=zone),
        end=datetime.datetime.combine(
            end + datetime.timedelta(days=1), datetime.time(), tzinfo=zone
        ),
    )
    return render(
        request, "intake/staff/surveys.html", {"figures": figures, "start": start, "end": end}
    )
