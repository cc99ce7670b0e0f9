"""Staff pages for the EHR feeds: Integration → Quarantine and Match reviews.

Ids in URLs are the queue rows' own (no PHI); the payload of a quarantined item is
shown only when asked for (`?payload=1`), to a role that may see it, and audited.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from careloop.core.web import staff_page
from careloop.ehr.forms import DecisionForm, DismissForm, QuarantineFilterForm
from careloop.ehr.models import MatchStatus
from careloop.ehr.services import (
    AlreadyDecided,
    match_review_decide,
    match_review_get,
    match_reviews_list,
    may_see_payloads,
    quarantine_dismiss,
    quarantine_get,
    quarantine_list,
    quarantine_payload,
    quarantine_reprocess,
)
from careloop.patients.merge import MergeRefused
from careloop.security.permissions import Op, Resource, actor_allowed


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _page_number(request: HttpRequest) -> int:
    value = request.GET.get("page", "1")
    return int(value) if value.isdigit() else 1


@require_safe
@staff_page(Op.READ, Resource.INTEGRATION)
def quarantine_list_page(request: HttpRequest) -> HttpResponse:
    filters = QuarantineFilterForm(request.GET or None)
    status, source_id = filters.filters()
    page = quarantine_list(
        actor=request.user, status=status, source_id=source_id, page=_page_number(request)
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "ehr/quarantine_list.html",
        {
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            "may_act": actor_allowed(request.user, Op.WRITE, Resource.INTEGRATION),
        },
    )


@require_safe
@staff_page(Op.READ, Resource.INTEGRATION)
def quarantine_item_page(request: HttpRequest, item_id: uuid.UUID) -> HttpResponse:
    item = quarantine_get(actor=request.user, item_id=item_id)
    may_see = may_see_payloads(request.user)
    payload = None
    if may_see and request.GET.get("payload") == "1":
        payload = quarantine_payload(actor=request.user, item_id=item.pk, request=request)
    return render(
        request,
        "ehr/quarantine_item.html",
        {
            "item": item,
            "payload": payload,
            "may_see_payload": may_see,
            "may_act": actor_allowed(request.user, Op.WRITE, Resource.INTEGRATION),
            "dismiss_form": DismissForm(),
        },
    )


@require_POST
@staff_page(Op.WRITE, Resource.INTEGRATION)
def quarantine_dismiss_action(request: HttpRequest, item_id: uuid.UUID) -> HttpResponse:
    form = DismissForm(request.POST)
    back = redirect(reverse("ehr:quarantine_item", kwargs={"item_id": item_id}))
    if not form.is_valid():
        messages.error(request, "Say why the item is dismissed.")
        return back
    try:
        quarantine_dismiss(actor=request.user, item_id=item_id, reason=form.cleaned_data["reason"])
    except AlreadyDecided as closed:
        messages.error(request, str(closed))
        return back
    messages.success(request, "Item dismissed.")
    return redirect("ehr:quarantine")


@require_POST
@staff_page(Op.WRITE, Resource.INTEGRATION)
def quarantine_reprocess_action(request: HttpRequest) -> HttpResponse:
    item_ids = [i for i in map(_uuid, request.POST.getlist("items")) if i is not None]
    if not item_ids:
        messages.error(request, "Choose the items to re-process.")
        return redirect("ehr:quarantine")
    run = quarantine_reprocess(actor=request.user, item_ids=item_ids)
    if run is None:
        messages.error(request, "None of those items is open any more.")
    else:
        left = sum(counts.get("quarantined", 0) for counts in run.counts.values())
        waiting = sum(counts.get("waiting", 0) for counts in run.counts.values())
        messages.success(
            request,
            f"Re-processed {len(item_ids)} item(s): {left} quarantined again, "
            f"{waiting} waiting for their patient.",
        )
    return redirect("ehr:quarantine")


@require_safe
@staff_page(Op.WRITE, Resource.DEMOGRAPHICS)
def match_list_page(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", MatchStatus.OPEN)
    if status not in MatchStatus.values and status != "any":
        status = MatchStatus.OPEN
    page = match_reviews_list(
        actor=request.user, status="" if status == "any" else status, page=_page_number(request)
    )
    return render(
        request,
        "ehr/match_list.html",
        {"page": page, "status": status, "statuses": [*MatchStatus.choices, ("any", "Any")]},
    )


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.DEMOGRAPHICS)
def match_review_page(request: HttpRequest, review_id: int) -> HttpResponse:
    form = DecisionForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            review = match_review_decide(
                actor=request.user,
                review_id=review_id,
                same_person=form.cleaned_data["decision"] == "merge",
            )
        except (AlreadyDecided, MergeRefused) as refused:
            error = str(refused)
        else:
            messages.success(request, f"Review decided: {review.get_status_display()}.")
            return redirect("ehr:matches")
    view = match_review_get(actor=request.user, review_id=review_id, request=request)
    return render(request, "ehr/match_review.html", {"view": view, "form": form, "error": error})
