"""Staff pages for outreach: journeys (list, editor, dry run), the message log, tasks.

Journeys are configuration (admin: config write). The message log and tasks name
patients and say what was sent to them: messages read, audited per page like every
other list of patients.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_safe

from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.core.clock import now
from careloop.core.web import staff_page
from careloop.outreach.dry_run import journey_dry_run
from careloop.outreach.journey_form import (
    FIELDS,
    NEW_STEP,
    edit_from_post,
    errors_by_step,
    step_fields,
)
from careloop.outreach.journeys import CONDITIONS, EXITS, JourneyInvalid, journey_save
from careloop.outreach.models import (
    EnrollmentStatus,
    Journey,
    Message,
    MessageStatus,
    MessageTemplate,
    StaffTask,
    TaskStatus,
)
from careloop.outreach.placeholders import PLACEHOLDERS, TemplateRenderError
from careloop.outreach.templates import (
    TemplateRejected,
    template_lint,
    template_preview,
    template_save,
)
from careloop.security.audit import audit_record
from careloop.security.permissions import Op, Resource, actor_allowed

PAGE_SIZE = 50


def _journey(key: str) -> Journey:
    journey = Journey.objects.filter(key=key).first()
    if journey is None:
        raise Http404("no such journey")
    return journey


@require_safe
@staff_page(Op.READ, Resource.CONFIG)
def journeys(request: HttpRequest) -> HttpResponse:
    rows = Journey.objects.annotate(
        active=Count("enrollments", filter=Q(enrollments__status=EnrollmentStatus.ACTIVE))
    ).order_by("name")
    return render(request, "outreach/journeys.html", {"journeys": rows})


def _editor_context(
    journey: Journey,
    definition: dict[str, Any],
    *,
    name: str,
    enabled: bool,
    errors: list[str] | None = None,
    unsaved: bool = False,
) -> dict[str, Any]:
    by_step, rest = errors_by_step(errors or [])
    steps = [
        {
            "index": i,
            "kind": step.get("kind", ""),
            "values": step_fields(step),
            "fields": FIELDS.get(str(step.get("kind")), ()),
            "errors": by_step.get(i, []),
        }
        for i, step in enumerate(definition.get("steps", []))
    ]
    return {
        "journey": journey,
        "name": name,
        "enabled": enabled,
        "steps": steps,
        "exits": definition.get("exits", []),
        "all_exits": list(EXITS),
        "conditions": list(CONDITIONS),
        "kinds": list(NEW_STEP),
        "purposes": Purpose.choices,
        "channels": Channel.values,
        "errors": rest,
        "has_errors": bool(errors),
        "unsaved": unsaved,
    }


@require_http_methods(["GET", "POST"])
@staff_page(Op.WRITE, Resource.CONFIG)
def journey_edit(request: HttpRequest, key: str) -> HttpResponse:
    journey = _journey(key)
    if request.method == "GET":
        context = _editor_context(
            journey, journey.definition, name=journey.name, enabled=journey.enabled
        )
        context["saved"] = request.GET.get("saved") == "1"
        return render(request, "outreach/journey_edit.html", context)
    edit = edit_from_post(request.POST, journey.definition)
    if edit.action != "save":
        context = _editor_context(
            journey, edit.definition, name=edit.name, enabled=edit.enabled, unsaved=True
        )
        return render(request, "outreach/journey_edit.html", context)
    try:
        journey_save(
            journey,
            definition=edit.definition,
            enabled=edit.enabled,
            name=edit.name,
            actor=request.user,  # type: ignore[arg-type]
        )
    except JourneyInvalid as invalid:
        context = _editor_context(
            journey,
            edit.definition,
            name=edit.name,
            enabled=edit.enabled,
            errors=invalid.errors,
            unsaved=True,
        )
        return render(request, "outreach/journey_edit.html", context, status=400)
    return redirect(f"{request.path}?saved=1")


@require_safe
@staff_page(Op.WRITE, Resource.CONFIG)
def journey_dry_run_page(request: HttpRequest, key: str) -> HttpResponse:
    journey = _journey(key)
    result = journey_dry_run(journey)
    # Rendered messages name patients: only for a role that may read messages.
    show_samples = actor_allowed(request.user, Op.READ, Resource.MESSAGES)
    audit_record(
        action="journey.dry_run",
        request=request,
        resource_type="journey",
        resource_id=str(journey.pk),
        fields=("body",) if show_samples and result.samples else (),
    )
    return render(
        request,
        "outreach/journey_dry_run.html",
        {"journey": journey, "result": result, "show_samples": show_samples},
    )


@require_safe
@staff_page(Op.READ, Resource.MESSAGES)
def message_log(request: HttpRequest) -> HttpResponse:
    rows = Message.objects.select_related("patient", "enrollment__journey").order_by(
        "-created_at", "id"
    )
    filters = {
        "status": (request.GET.get("status", ""), MessageStatus.values),
        "channel": (request.GET.get("channel", ""), Channel.values),
        "purpose": (request.GET.get("purpose", ""), Purpose.values),
    }
    for name, (value, allowed) in filters.items():
        if value in allowed:
            rows = rows.filter(**{name: value})
    journey_key = request.GET.get("journey", "")
    if journey_key:
        rows = rows.filter(enrollment__journey__key=journey_key)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page", 1))
    audit_record(
        action="message.list",
        request=request,
        resource_type="message",
        fields=("patient", "status"),
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "outreach/messages.html",
        {
            "page": page,
            "query": query.urlencode(),
            "statuses": MessageStatus.choices,
            "channels": Channel.choices,
            "purposes": Purpose.choices,
            "journeys": Journey.objects.order_by("name"),
            "current": {name: value for name, (value, _) in filters.items()}
            | {"journey": journey_key},
        },
    )


@require_http_methods(["GET", "POST"])
@staff_page(Op.WRITE, Resource.MESSAGES)
def tasks(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            task_id = uuid.UUID(request.POST.get("task", ""))
        except ValueError:
            return redirect(request.path)
        task = StaffTask.objects.filter(pk=task_id, status=TaskStatus.OPEN).first()
        if task is not None:
            task.status, task.closed_at = TaskStatus.DONE, now()
            task.save(update_fields=["status", "closed_at"])
            audit_record(
                action="task.update",
                request=request,
                patient_id=task.patient_id,
                resource_type="staff_task",
                resource_id=str(task.pk),
            )
        return redirect(request.path)
    open_tasks = StaffTask.objects.filter(status=TaskStatus.OPEN).select_related(
        "patient", "enrollment__journey"
    )
    page = Paginator(open_tasks, PAGE_SIZE).get_page(request.GET.get("page", 1))
    audit_record(
        action="message.list", request=request, resource_type="staff_task", fields=("patient",)
    )
    return render(request, "outreach/tasks.html", {"page": page})


@require_safe
@staff_page(Op.READ, Resource.CONFIG)
def templates(request: HttpRequest) -> HttpResponse:
    rows = MessageTemplate.objects.filter(active=True).order_by("key", "channel", "language")
    return render(request, "outreach/templates.html", {"templates": rows})


@require_http_methods(["GET", "POST"])
@staff_page(Op.WRITE, Resource.CONFIG)
def template_edit(request: HttpRequest, template: str, channel: str, language: str) -> HttpResponse:
    """Edit a template: a save is linted (refused with reasons) and becomes a new
    version; "Preview" renders the text as typed with a sample patient, unsaved."""
    current = MessageTemplate.objects.filter(
        key=template, channel=channel, language=language, active=True
    ).first()
    if current is None:
        raise Http404("no such template")
    draft = MessageTemplate(
        key=current.key,
        channel=current.channel,
        language=current.language,
        purpose=current.purpose,
        version=current.version,
        content_class=request.POST.get("content_class", current.content_class),
        subject=request.POST.get("subject", current.subject),
        body=request.POST.get("body", current.body),
        body_html=request.POST.get("body_html", current.body_html),
        expects_reply=current.expects_reply,
    )
    reasons: list[str] = []
    preview = None
    status = 200
    if request.method == "POST" and request.POST.get("action") == "save":
        try:
            saved = template_save(
                key=draft.key,
                channel=draft.channel,
                language=draft.language,
                purpose=draft.purpose,
                content_class=draft.content_class,
                subject=draft.subject,
                body=draft.body,
                body_html=draft.body_html,
                expects_reply=draft.expects_reply,
                actor=request.user,  # type: ignore[arg-type]
            )
        except TemplateRejected as rejected:
            reasons, status = rejected.reasons, 400
        else:
            return redirect(f"{request.path}?saved={saved.version}")
    else:
        reasons = template_lint(
            channel=draft.channel,
            content_class=draft.content_class,
            subject=draft.subject,
            body=draft.body,
            body_html=draft.body_html,
            language=draft.language,
        )
    if not reasons:
        try:
            preview = template_preview(draft)
        except TemplateRenderError as error:
            reasons = [str(error)]
    return render(
        request,
        "outreach/template_edit.html",
        {
            "template": current,
            "draft": draft,
            "reasons": reasons,
            "preview": preview,
            "classes": ContentClass.choices,
            "saved": request.GET.get("saved", ""),
            "placeholders": sorted(PLACEHOLDERS.items()),
        },
        status=status,
    )
