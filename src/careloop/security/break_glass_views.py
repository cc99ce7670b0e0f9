"""Staff pages for break-the-glass: the restricted-record offer and the auditor's report."""

from __future__ import annotations

import uuid

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_safe

from careloop.core.web import staff_page
from careloop.security.break_glass import (
    GRANT_MINUTES,
    REASON_MAX_LENGTH,
    REASON_MIN_LENGTH,
    ReasonRefused,
    break_glass_grant,
    break_glass_report,
)
from careloop.security.permissions import Op, Resource


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Why do you need this record now?",
        min_length=REASON_MIN_LENGTH,
        max_length=REASON_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": REASON_MAX_LENGTH}),
    )


def restricted_page(
    request: HttpRequest, patient_id: uuid.UUID, form: ReasonForm | None = None, status: int = 200
) -> HttpResponse:
    """The offer to break the glass. It says nothing about the patient, not even whether
    the id names one, so it looks the same for a patient outside the care team and for
    an id that does not exist."""
    context = {
        "patient_id": patient_id,
        "form": form or ReasonForm(),
        "minutes": GRANT_MINUTES,
        "min_length": REASON_MIN_LENGTH,
    }
    return render(request, "security/break_glass.html", context, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.READ, Resource.CLINICAL)
def break_glass_open(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    if request.method != "POST":
        return restricted_page(request, patient_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return restricted_page(request, patient_id, form)
    try:
        break_glass_grant(
            actor=request.user,
            patient_id=patient_id,
            reason=form.cleaned_data["reason"],
            request=request,
        )
    except ReasonRefused as refused:
        form.add_error("reason", str(refused))
        return restricted_page(request, patient_id, form)
    return redirect("patients:detail", patient_id=patient_id)


@require_safe
@staff_page(Op.READ, Resource.AUDIT)
def break_glass_report_page(request: HttpRequest) -> HttpResponse:
    report = break_glass_report(
        actor=request.user, page=request.GET.get("page", 1), request=request
    )
    return render(request, "security/break_glass_report.html", {"report": report})
