"""The patient's forms in the portal, under /portal/forms/: the list, a form (save and
continue later, resume, submit), and the thank-you page.

Every read starts from the signed-in patient (`portal_page`); an assignment of anybody
else's is a 404 like one that does not exist.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from careloop.intake.answers import answers_from_form
from careloop.intake.definition import items_in_language, walk
from careloop.intake.form_rows import form_rows, values_from_answers, values_from_post
from careloop.intake.models import AssignmentStatus, FormAssignment
from careloop.intake.selectors import (
    portal_assignment,
    portal_assignments,
    questionnaire_title,
    saved_answers,
)
from careloop.intake.services import (
    FormClosed,
    FormIncomplete,
    questionnaire_items,
    required_forms_ensure,
    response_record,
)
from careloop.portal.accounts import portal_patient
from careloop.portal.models import PortalAccount
from careloop.portal.web import portal_page

FORM_METHODS = ["GET", "HEAD", "POST"]


@never_cache
@require_GET
@portal_page
def forms_list(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    patient = portal_patient(account=account)
    required_forms_ensure(patient=patient)
    to_fill, done = portal_assignments(patient=patient)
    return render(request, "intake/portal/list.html", {"to_fill": to_fill, "done": done})


def _render_form(
    request: HttpRequest,
    assignment: FormAssignment,
    values: dict[str, list[str]],
    others: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> HttpResponse:
    # The texts in the page's language where the questionnaire has them; the answers
    # are read and stored against the questionnaire's own items whatever it is.
    language = get_language() or "en"
    items = items_in_language(questionnaire_items(assignment.questionnaire), language)
    context = {
        "assignment": assignment,
        "title": questionnaire_title(assignment.questionnaire, language),
        "rows": form_rows(items, values, errors, others),
        "errors": errors,
        "submission_key": uuid.uuid4().hex,
        "has_required": any(item.required for item in walk(items)),
    }
    return render(request, "intake/portal/form.html", context, status=status)


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def form_page(
    request: HttpRequest, account: PortalAccount, assignment_id: uuid.UUID
) -> HttpResponse:
    patient = portal_patient(account=account)
    assignment = portal_assignment(patient=patient, assignment_id=assignment_id)
    done_url = reverse("intake_portal:done", args=[assignment.pk])
    if assignment.status == AssignmentStatus.COMPLETED:
        return HttpResponseRedirect(done_url)
    items = questionnaire_items(assignment.questionnaire)
    by_id = {item.link_id: item for item in walk(items)}
    if request.method != "POST":
        values, others = values_from_answers(by_id, saved_answers(assignment=assignment))
        return _render_form(request, assignment, values, others, {})
    answers, errors = answers_from_form(items, request.POST)
    complete = request.POST.get("action") == "submit"
    values, others = values_from_post(by_id, request.POST)
    if errors:
        return _render_form(request, assignment, values, others, errors)
    try:
        response_record(
            user=account.user,
            assignment_id=assignment.pk,
            patient=patient,
            answers=answers,
            complete=complete,
            submission_key=request.POST.get("submission_key", "")[:64],
        )
    except FormIncomplete as incomplete:
        return _render_form(request, assignment, values, others, incomplete.errors)
    except FormClosed:
        return HttpResponseRedirect(done_url)
    if complete:
        return HttpResponseRedirect(done_url)
    messages.success(
        request, _("Your answers are saved. You can come back and finish this form later.")
    )
    return HttpResponseRedirect(reverse("intake_portal:list"))


@never_cache
@require_GET
@portal_page
def form_done(
    request: HttpRequest, account: PortalAccount, assignment_id: uuid.UUID
) -> HttpResponse:
    patient = portal_patient(account=account)
    assignment = portal_assignment(patient=patient, assignment_id=assignment_id)
    if assignment.status != AssignmentStatus.COMPLETED:
        return HttpResponseRedirect(reverse("intake_portal:form", args=[assignment.pk]))
    return render(request, "intake/portal/done.html", {"assignment": assignment})
