"""Staff pages for a patient's consents: sign, record, history, FHIR export."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_safe

from careloop.consent.documents import consent_document_current
from careloop.consent.fhir import consent_bundle
from careloop.consent.forms import (
    PreferencesForm,
    RecordForm,
    SignForm,
    preferences_initial,
)
from careloop.consent.models import CaptureMethod, ConsentKind, ConsentStatus
from careloop.consent.preferences import preferences_current, preferences_update
from careloop.consent.selectors import consent_history_list, consent_patient
from careloop.consent.services import ConsentError, consent_capture, consent_sign
from careloop.core.web import staff_page
from careloop.security.audit import audit_record, source_address
from careloop.security.permissions import Op, Resource


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.CONSENT)
def consent_sign_page(request: HttpRequest, patient_id: uuid.UUID, kind: str) -> HttpResponse:
    if kind not in ConsentKind.values:
        raise Http404
    patient = consent_patient(actor=request.user, patient_id=patient_id, op=Op.WRITE)
    document = consent_document_current(kind=kind)
    form = SignForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and document is not None and form.is_valid():
        try:
            consent_sign(
                actor=request.user,
                patient=patient,
                document=document,
                signer_name=form.cleaned_data["signer_name"],
                signer_is_proxy=form.cleaned_data["signer_is_proxy"],
                proxy_authority=form.cleaned_data["proxy_authority"],
                source_ip=source_address(request),
                method=CaptureMethod.STAFF_ESIGNATURE,
                request=request,
            )
        except ConsentError as error:
            form.add_error(None, str(error))
        else:
            return redirect("consent:history", patient_id=patient.pk)
    context = {"p": patient, "kind_label": ConsentKind(kind).label, "document": document}
    return render(request, "consent/sign.html", {**context, "form": form})


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.CONSENT)
def consent_record_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """A verbal or paper answer, or a revocation, taken by staff."""
    patient = consent_patient(actor=request.user, patient_id=patient_id, op=Op.WRITE)
    form = RecordForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        consent_capture(
            actor=request.user,
            patient=patient,
            kind=ConsentKind(data["kind"]),
            status=ConsentStatus(data["status"]),
            method=CaptureMethod(data["method"]),
            note=data["note"],
            document=consent_document_current(kind=data["kind"]),
            source_ip=source_address(request),
            request=request,
        )
        return redirect("consent:history", patient_id=patient.pk)
    return render(request, "consent/record.html", {"p": patient, "form": form})


@require_safe
@staff_page(Op.READ, Resource.CONSENT)
def consent_history_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    patient, records = consent_history_list(
        actor=request.user, patient_id=patient_id, request=request
    )
    return render(request, "consent/history.html", {"p": patient, "records": records})


@require_safe
@staff_page(Op.READ, Resource.CONSENT)
def consent_fhir_export(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """The history as a FHIR R4 Bundle of Consent resources (no class-I text in it)."""
    patient, records = consent_history_list(
        actor=request.user, patient_id=patient_id, request=request
    )
    audit_record(
        action="consent.export",
        request=request,
        patient_id=patient.pk,
        resource_type="consent",
        fields=("fhir_bundle",),
    )
    response = JsonResponse(consent_bundle(records), content_type="application/fhir+json")
    response["Content-Disposition"] = 'attachment; filename="consents.json"'
    return response


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.CONSENT)
def consent_preferences_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """The preference centre: channels, opt-ins, quiet hours, restrictions, consents."""
    patient = consent_patient(actor=request.user, patient_id=patient_id, op=Op.WRITE)
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            preferences_update(
                actor=request.user,
                patient=patient,
                preferences=form.preferences(),
                method=CaptureMethod(form.cleaned_data["method"]),
                note=form.cleaned_data["note"],
                source_ip=source_address(request),
                request=request,
            )
            return redirect("consent:preferences", patient_id=patient.pk)
    else:
        form = PreferencesForm(initial=preferences_initial(preferences_current(patient=patient)))
    return render(request, "consent/preferences.html", {"p": patient, "form": form})
