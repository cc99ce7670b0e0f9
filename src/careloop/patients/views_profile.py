"""Staff pages that edit the patient profile: contacts, coverage, notes, care team,
household, and the lifecycle stage's "recompute" button.

Each page is one route: a GET shows the list and a form (`?edit=<id>` fills the form
with one row), a POST carries `action` (add, edit, remove, end) and the row's id in the
body, so no id but the patient's is ever in a URL. A form that does not validate is
shown again with its errors (200); a write redirects back (POST/redirect/GET).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from careloop.core.errors import NotFound
from careloop.core.web import staff_page
from careloop.patients.address import AddressError
from careloop.patients.care_team import (
    patient_care_team_set,
    patient_lifecycle_recompute,
    patient_tags_set,
)
from careloop.patients.contacts import (
    contact_point_add,
    contact_point_get,
    contact_point_remove,
    contact_point_update,
    contact_points_list,
    coverage_get,
    coverage_save,
    coverages_list,
)
from careloop.patients.demographics import patient_address_set
from careloop.patients.forms import (
    AddressForm,
    CareTeamForm,
    ContactPointForm,
    CoverageForm,
    NoteForm,
    RelationshipForm,
    TagsForm,
)
from careloop.patients.household import relationship_add, relationship_end, relationships_list
from careloop.patients.models import LifecycleStage
from careloop.patients.notes import note_add, note_edit, note_get_own, notes_list
from careloop.patients.selectors import patient_get
from careloop.security.permissions import Op, Resource


def _row_id(value: str | None) -> uuid.UUID | None:
    """A row id from a query string or form field; None for a missing or malformed one."""
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _back(page: str, patient_id: uuid.UUID) -> HttpResponse:
    return redirect(reverse(f"patients:{page}", kwargs={"patient_id": patient_id}))


@require_POST
@staff_page(Op.WRITE, Resource.DEMOGRAPHICS)
def lifecycle_recompute_view(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    result = patient_lifecycle_recompute(actor=request.user, patient_id=patient_id)
    messages.success(request, f"Lifecycle stage recomputed: {LifecycleStage(result.stage).label}.")
    return redirect(reverse("patients:detail", kwargs={"patient_id": patient_id}) + "#lifecycle")


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.CONTACT)
def contacts_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    actor = request.user
    editing = _row_id(request.POST.get("contact") or request.GET.get("edit"))
    action = request.POST.get("action", "add")
    form = ContactPointForm()
    if request.method == "POST" and action == "remove" and editing is not None:
        contact_point_remove(actor=actor, patient_id=patient_id, contact_id=editing)
        messages.success(request, "Contact removed.")
        return _back("contacts", patient_id)
    if request.method == "POST":
        form = ContactPointForm(request.POST)
        if form.is_valid():
            details = form.details(form.cleaned_data)
            if action == "edit" and editing is not None:
                contact_point_update(
                    actor=actor, patient_id=patient_id, contact_id=editing, details=details
                )
            else:
                contact_point_add(actor=actor, patient_id=patient_id, details=details)
            messages.success(request, "Contact details saved.")
            return _back("contacts", patient_id)
    elif editing is not None:
        contact = contact_point_get(actor=actor, patient_id=patient_id, contact_id=editing)
        form = ContactPointForm(
            initial={
                field: getattr(contact, field)
                for field in ("system", "use", "value", "rank", "verified")
                + ("can_sms", "can_voice", "can_email")
            }
        )
    patient, contacts = contact_points_list(actor=actor, patient_id=patient_id)
    return _page(
        request,
        "patients/contacts.html",
        patient=patient,
        contacts=contacts,
        form=form,
        editing=editing if action != "add" or request.method == "GET" else None,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.COVERAGE)
def coverage_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    actor = request.user
    editing = _row_id(request.POST.get("coverage") or request.GET.get("edit"))
    form = CoverageForm()
    if request.method == "POST":
        form = CoverageForm(request.POST)
        if form.is_valid():
            coverage_save(
                actor=actor, patient_id=patient_id, coverage_id=editing, details=form.details()
            )
            messages.success(request, "Coverage saved.")
            return _back("coverage", patient_id)
    elif editing is not None:
        coverage = coverage_get(actor=actor, patient_id=patient_id, coverage_id=editing)
        form = CoverageForm(
            initial={
                field: getattr(coverage, field)
                for field in CoverageForm.base_fields
                if field != "member_id"
            }
            | {"member_id": coverage.member_id or ""}
        )
    patient, coverages = coverages_list(actor=actor, patient_id=patient_id)
    return _page(
        request,
        "patients/coverage.html",
        patient=patient,
        coverages=coverages,
        form=form,
        editing=editing,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.NOTES)
def notes_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    actor = request.user
    editing = _row_id(request.POST.get("note") or request.GET.get("edit"))
    form = NoteForm()
    if editing is not None and request.method != "POST":
        # The author check comes first: another user's note is a 403, not a form.
        note = note_get_own(actor=actor, patient_id=patient_id, note_id=editing)
        form = NoteForm(initial={"body": note.body})
    if request.method == "POST":
        if editing is not None:
            note_get_own(actor=actor, patient_id=patient_id, note_id=editing)
        form = NoteForm(request.POST)
        if form.is_valid():
            body = form.cleaned_data["body"]
            if editing is not None:
                note_edit(actor=actor, patient_id=patient_id, note_id=editing, body=body)
                messages.success(request, "Note updated; the earlier version is kept.")
            else:
                note_add(actor=actor, patient_id=patient_id, body=body)
                messages.success(request, "Note added.")
            return _back("notes", patient_id)
    patient = patient_get(actor=actor, patient_id=patient_id)
    return _page(
        request,
        "patients/notes.html",
        patient=patient,
        notes=notes_list(actor=actor, patient_id=patient_id),
        form=form,
        editing=editing,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.DEMOGRAPHICS)
def care_team_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    actor = request.user
    patient = patient_get(actor=actor, patient_id=patient_id)
    tags_form = TagsForm(initial={"tags": ", ".join(patient.tags.values_list("tag", flat=True))})
    team_form = CareTeamForm(
        initial={
            "primary_provider": patient.primary_provider_id,
            "home_location": patient.home_location_id,
            "care_coordinator": patient.care_coordinator_id,
        }
    )
    if request.method == "POST" and request.POST.get("action") == "tags":
        tags_form = TagsForm(request.POST)
        if tags_form.is_valid():
            patient_tags_set(
                actor=actor, patient_id=patient_id, tags=tags_form.cleaned_data["tags"]
            )
            messages.success(request, "Tags saved.")
            return _back("detail", patient_id)
    elif request.method == "POST" and request.POST.get("action") == "team":
        team_form = CareTeamForm(request.POST)
        if team_form.is_valid():
            data = team_form.cleaned_data
            patient_care_team_set(
                actor=actor,
                patient_id=patient_id,
                primary_provider=data["primary_provider"],
                home_location=data["home_location"],
                care_coordinator=data["care_coordinator"],
            )
            messages.success(request, "Care team saved.")
            return _back("detail", patient_id)
    return _page(
        request,
        "patients/care_team.html",
        patient=patient,
        tags_form=tags_form,
        team_form=team_form,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.DEMOGRAPHICS)
def household_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    actor = request.user
    form = RelationshipForm()
    ending = _row_id(request.POST.get("relationship"))
    if request.method == "POST" and request.POST.get("action") == "end" and ending is not None:
        relationship_end(actor=actor, patient_id=patient_id, relationship_id=ending)
        messages.success(request, "Relationship ended.")
        return _back("household", patient_id)
    if request.method == "POST":
        form = RelationshipForm(request.POST)
        if form.is_valid():
            try:
                relationship_add(actor=actor, patient_id=patient_id, details=form.details())
            except NotFound:
                form.add_error("related_patient", "No patient with that id is on your list.")
            except ValueError:
                form.add_error("related_patient", "A patient cannot be their own caregiver.")
            else:
                messages.success(request, "Relationship added.")
                return _back("household", patient_id)
    patient, relationships = relationships_list(actor=actor, patient_id=patient_id)
    return _page(
        request,
        "patients/household.html",
        patient=patient,
        relationships=relationships,
        form=form,
    )


def _page(request: HttpRequest, template: str, **context: Any) -> HttpResponse:
    context["p"] = context["patient"]
    return render(request, template, context)


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.DEMOGRAPHICS)
def address_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """The postal address, stored USPS-style; the patient's time zone follows from it."""
    patient = patient_get(actor=request.user, patient_id=patient_id)
    form = AddressForm(
        request.POST or None,
        initial={
            "line": patient.address_line or "",
            "city": patient.city or "",
            "state": patient.state,
            "postal_code": patient.postal_code or "",
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            patient_address_set(actor=request.user, patient_id=patient_id, **form.cleaned_data)
        except AddressError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Address saved.")
            return _back("detail", patient_id)
    return _page(request, "patients/address.html", patient=patient, form=form)
