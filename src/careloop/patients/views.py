"""Staff pages for patients: the searchable list and the patient's page."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_safe

from careloop.core.web import is_htmx, staff_page
from careloop.patients.selectors import patient_profile, patient_search
from careloop.security.access import PATIENT_READ_ROLES


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(PATIENT_READ_ROLES)
def patient_list(request: HttpRequest) -> HttpResponse:
    """The list, newest first; a search is POSTed so that names never sit in a URL.

    A GET carries only a page number (no PHI), for the unfiltered list.
    """
    params = request.POST if request.method == "POST" else request.GET
    query = request.POST.get("q", "") if request.method == "POST" else ""
    page = patient_search(actor=request.user, query=query, page=params.get("page", 1))
    template = "patients/_results.html" if is_htmx(request) else "patients/list.html"
    response = render(request, template, {"page": page})
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_safe
@staff_page(PATIENT_READ_ROLES)
def patient_detail(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    profile = patient_profile(actor=request.user, patient_id=patient_id)
    return render(request, "patients/detail.html", {"profile": profile, "p": profile.patient})
