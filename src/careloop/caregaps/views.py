"""Staff pages for care gaps: the measures overview, a measure's recall worklist and its
CSV export. Filters are GET parameters (codes, dates and ids, never a name)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import cast

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from careloop.caregaps.forms import WorklistForm
from careloop.caregaps.selectors import (
    caregaps_measure_get,
    caregaps_overview,
    caregaps_worklist,
    caregaps_worklist_export,
    caregaps_worklist_patient_ids,
)
from careloop.caregaps.worklist_query import Sort
from careloop.core.clock import now
from careloop.core.web import staff_page
from careloop.outreach.models import Journey
from careloop.outreach.triggers import journey_enroll_many
from careloop.security.auth.gate import reauth_required
from careloop.security.permissions import Op, Resource, actor_allowed


@require_safe
@staff_page(Op.READ, Resource.CLINICAL)
def overview(request: HttpRequest) -> HttpResponse:
    summaries = caregaps_overview(actor=request.user)
    return render(request, "caregaps/overview.html", {"summaries": summaries})


def _query(request: HttpRequest, *drop: str) -> str:
    query = request.GET.copy()
    for name in drop:
        query.pop(name, None)
    return query.urlencode()


def _sort_links(request: HttpRequest, current: str) -> dict[str, dict[str, str]]:
    """Per sortable column: the URL that sorts by it (flipping when it is the current
    order) and the aria-sort value of its header."""
    base = _query(request, "sort", "page")
    links = {}
    for key in Sort.KEYS:
        ascending = current == key
        target = f"-{key}" if ascending else key
        state = "ascending" if current == key else "descending" if current == f"-{key}" else "none"
        links[key] = {"url": f"?{base}&sort={target}" if base else f"?sort={target}", "aria": state}
    return links


@require_safe
@staff_page(Op.READ, Resource.CLINICAL)
def worklist(request: HttpRequest, measure_id: str) -> HttpResponse:
    measure = caregaps_measure_get(measure_id=measure_id)
    form = WorklistForm(request.GET, measure=measure)
    page = None
    if form.is_valid():
        filters = form.filters()
        page = caregaps_worklist(
            actor=request.user,
            measure_id=measure.id,
            filters=filters,
            page=request.GET.get("page", 1),
        )
    context = {
        "measure": measure,
        "form": form,
        "page": page,
        "query": _query(request, "page"),
        "sort": page.filters.sort if page else Sort.DUE,
        "sort_links": _sort_links(request, page.filters.sort if page else Sort.DUE),
        "can_export": actor_allowed(request.user, Op.EXPORT, Resource.CLINICAL),
        "journeys": (
            Journey.objects.filter(enabled=True).order_by("name")
            if actor_allowed(request.user, Op.WRITE, Resource.MESSAGES)
            else []
        ),
        "enrolled": int(e) if (e := request.GET.get("enrolled", "")).isdigit() else None,
    }
    # Bad filter input is the form's business: the page says what is wrong, with 400.
    return render(request, "caregaps/worklist.html", context, status=200 if page else 400)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        # Spreadsheet formula injection: a cell starting with = + - @ is text, not a formula.
        yield writer.writerow(
            [f"'{cell}" if cell[:1] in ("=", "+", "-", "@") else cell for cell in row]
        )


@require_safe
@staff_page(Op.EXPORT, Resource.CLINICAL)
@reauth_required
def export_csv(request: HttpRequest, measure_id: str) -> HttpResponse:
    """The filtered rows as CSV, all pages. A bulk copy of names with clinical status:
    the password and a fresh code again first (careloop.security.auth.gate)."""
    measure = caregaps_measure_get(measure_id=measure_id)
    form = WorklistForm(request.GET, measure=measure)
    if not form.is_valid():
        context = {"measure": measure, "form": form, "page": None, "query": _query(request)}
        return render(request, "caregaps/worklist.html", context, status=400)
    rows = caregaps_worklist_export(
        actor=request.user, measure_id=measure.id, filters=form.filters()
    )
    response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    name = f"worklist-{measure.id}-{now().strftime('%Y%m%dT%H%M%SZ')}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    # core.web's View type says HttpResponse; a streaming response serves the same role.
    return cast(HttpResponse, response)


@require_POST
@staff_page(Op.WRITE, Resource.MESSAGES)
def enroll(request: HttpRequest, measure_id: str) -> HttpResponse:
    """Add every patient the worklist's filters select to a journey (manual enrolment,
    once per patient and action); back to the list, which says how many."""
    measure = caregaps_measure_get(measure_id=measure_id)
    form = WorklistForm(request.GET, measure=measure)
    journey = Journey.objects.filter(key=request.POST.get("journey", ""), enabled=True).first()
    if not form.is_valid() or journey is None:
        return redirect(f"{request.path.rsplit('/', 2)[0]}/?{_query(request)}")
    patient_ids = caregaps_worklist_patient_ids(
        actor=request.user, measure_id=measure.id, filters=form.filters()
    )
    batch = request.POST.get("batch", "")[:40] or now().strftime("%Y%m%dT%H%M%S")
    added = journey_enroll_many(
        journey, patient_ids=patient_ids, batch=f"{measure.id}:{batch}", actor=request.user
    )
    query = _query(request)
    back = reverse("caregaps:worklist", args=[measure.id])
    return redirect(f"{back}?{query}&enrolled={added}" if query else f"{back}?enrolled={added}")
