"""The auditor's pages: search the audit log, export it as FHIR AuditEvent NDJSON or CSV.

Filters travel in GET parameters: a patient *id*, a username, an action, an outcome
and dates, none of them PHI of class I, so a search can be bookmarked and paged.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, cast

from django import forms
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe

from careloop.core.clock import now
from careloop.core.web import View, is_htmx, staff_page
from careloop.security.audit import ACTIONS
from careloop.security.audit_export import csv_lines, ndjson_lines
from careloop.security.audit_search import (
    AuditFilter,
    audit_disclosures_for_patient,
    audit_export_events,
    audit_search,
)
from careloop.security.auth.gate import reauth_required
from careloop.security.models import AuditEvent
from careloop.security.permissions import Op, Resource


class AuditFilterForm(forms.Form):
    patient = forms.UUIDField(required=False, label="Patient id")
    user = forms.CharField(required=False, max_length=150, label="Username")
    action = forms.ChoiceField(
        required=False, choices=[("", "Any action"), *[(a, a) for a in sorted(ACTIONS)]]
    )
    outcome = forms.ChoiceField(
        required=False, choices=[("", "Any outcome"), *AuditEvent.Outcome.choices]
    )
    since = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))

    def filters(self) -> AuditFilter:
        """The validated filter; dates are whole days in the practice's time zone."""
        data: dict[str, Any] = self.cleaned_data
        return AuditFilter(
            patient_id=data.get("patient"),
            username=(data.get("user") or "").strip(),
            action=data.get("action") or "",
            outcome=data.get("outcome") or "",
            since=_day_start(data.get("since")),
            until=_day_start(data["until"] + datetime.timedelta(days=1))
            if data.get("until")
            else None,
        )


def _day_start(day: datetime.date | None) -> datetime.datetime | None:
    if day is None:
        return None
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_current_timezone())


def _filters(request: HttpRequest) -> tuple[AuditFilterForm, AuditFilter | None]:
    form = AuditFilterForm(request.GET)
    return form, form.filters() if form.is_valid() else None


@require_safe
@staff_page(Op.READ, Resource.AUDIT)
def audit_log(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    page = None
    if filters is not None:
        page = audit_search(
            actor=request.user, filters=filters, page=request.GET.get("page", 1), request=request
        )
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    template = "security/audit_results.html" if is_htmx(request) else "security/audit_log.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _export(request: HttpRequest, fmt: str) -> HttpResponse:
    form, filters = _filters(request)
    if filters is None:
        return render(request, "security/audit_log.html", {"form": form}, status=400)
    events = audit_export_events(actor=request.user, filters=filters, format=fmt, request=request)
    stamp = now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "ndjson":
        response = StreamingHttpResponse(
            ndjson_lines(events), content_type="application/fhir+ndjson"
        )
        name = f"audit-events-{stamp}.ndjson"
    else:
        response = StreamingHttpResponse(csv_lines(events), content_type="text/csv; charset=utf-8")
        name = f"audit-events-{stamp}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    # core.web's View type says HttpResponse; a streaming response serves the same role.
    return cast(HttpResponse, response)


def _fresh_auth(view: View) -> View:
    """Exports ask for the password and a code again (careloop.security.auth.gate): a
    bulk copy of who-saw-whom is the most sensitive thing an auditor can take away."""
    return reauth_required(view)


@require_safe
@staff_page(Op.EXPORT, Resource.AUDIT)
@_fresh_auth
def audit_export_ndjson(request: HttpRequest) -> HttpResponse:
    return _export(request, "ndjson")


@require_safe
@staff_page(Op.EXPORT, Resource.AUDIT)
@_fresh_auth
def audit_export_csv(request: HttpRequest) -> HttpResponse:
    return _export(request, "csv")


@require_safe
@staff_page(Op.READ, Resource.AUDIT)
def audit_disclosures(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """The accounting of disclosures for one patient, as the auditor sees it."""
    disclosures = audit_disclosures_for_patient(
        actor=request.user, patient_id=patient_id, request=request
    )
    context = {"patient_id": patient_id, "disclosures": disclosures}
    return render(request, "security/audit_disclosures.html", context)
