"""Staff pages for patients: the searchable list and the patient's page."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_safe

from careloop.core.errors import NotFound
from careloop.core.web import is_htmx, staff_page
from careloop.patients.care_team import patient_overview
from careloop.patients.selectors import patient_profile, patient_search
from careloop.security.break_glass_views import restricted_page
from careloop.security.models import User
from careloop.security.permissions import SCOPED_ROLES, Op, Resource


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.READ, Resource.DEMOGRAPHICS)
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
@staff_page(Op.READ, Resource.DEMOGRAPHICS)
def patient_detail(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    try:
        profile = patient_profile(actor=request.user, patient_id=patient_id)
    except NotFound:
        # A scoped role may break the glass. The offer is a 404 like any other, and the
        # same page whether the patient is out of scope or does not exist at all.
        if isinstance(request.user, User) and request.user.role in SCOPED_ROLES:
            return restricted_page(request, patient_id, status=404)
        raise
    overview = patient_overview(actor=request.user, patient_id=patient_id)
    return render(
        request,
        "patients/detail.html",
        {"profile": profile, "p": profile.patient, "overview": overview},
    )
