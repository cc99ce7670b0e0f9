"""Staff pages to register a patient (with duplicate detection) and to merge two records."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from careloop.core.errors import NotFound
from careloop.core.web import staff_page
from careloop.patients.forms_registration import RegistrationForm
from careloop.patients.merge import MergeRefused, patient_merge
from careloop.patients.registration import DuplicateSuspected, patient_register
from careloop.patients.selectors import patient_get
from careloop.security.permissions import Op, Resource


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.DEMOGRAPHICS)
def patient_new(request: HttpRequest) -> HttpResponse:
    form = RegistrationForm(request.POST or None)
    candidates = []
    if request.method == "POST" and form.is_valid():
        try:
            patient = patient_register(
                actor=request.user,
                registration=form.registration(),
                not_a_duplicate_because=form.cleaned_data["not_a_duplicate_because"],
            )
        except DuplicateSuspected as suspected:
            candidates = suspected.candidates
        else:
            return redirect("patients:detail", patient_id=patient.pk)
    # Like every form page here: errors and candidates are shown on a 200 re-render.
    return render(request, "patients/register.html", {"form": form, "candidates": candidates})


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.DEMOGRAPHICS)
def patient_merge_confirm(
    request: HttpRequest, patient_id: uuid.UUID, duplicate_id: uuid.UUID
) -> HttpResponse:
    survivor = patient_get(actor=request.user, patient_id=patient_id)
    duplicate = patient_get(actor=request.user, patient_id=duplicate_id)
    error = ""
    if request.method == "POST":
        try:
            patient_merge(actor=request.user, survivor_id=survivor.pk, duplicate_id=duplicate.pk)
        except MergeRefused as refused:
            error = str(refused)
        except NotFound:
            raise
        else:
            return redirect("patients:detail", patient_id=survivor.pk)
    return render(
        request,
        "patients/merge.html",
        {"survivor": survivor, "duplicate": duplicate, "error": error},
    )
