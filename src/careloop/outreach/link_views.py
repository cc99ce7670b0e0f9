"""The pages behind links in messages: confirm a visit, ask to reschedule one.

Public (the patient follows a link from a text or an e-mail), so each page shows only
what the message itself carried: the visit's date, time and place. A GET never
changes anything (mail scanners open links); confirming is a POST from the page. An
expired or altered link gets a clear page and changes nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from careloop.core.clock import now
from careloop.outreach.journeys import journeys_wake
from careloop.outreach.links import LinkRefused, LinkTarget, link_open, portal_url
from careloop.patients.models import TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.audit import audit_record

OPEN = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


def _page(request: HttpRequest, context: dict[str, object], status: int = 200) -> HttpResponse:
    base = {
        "practice_phone": getattr(settings, "PRACTICE_PHONE", ""),
        "portal_url": portal_url(),
    }
    return render(request, "outreach/link.html", {**base, **context}, status=status)


def _refused(request: HttpRequest, reason: str) -> HttpResponse:
    return _page(request, {"refused": reason}, status=410 if reason == "expired" else 403)


@require_http_methods(["GET", "POST"])
def link(request: HttpRequest, code: str) -> HttpResponse:
    try:
        target = link_open(code)
    except LinkRefused as refused:
        return _refused(request, refused.reason)
    appointment = (
        Appointment.objects.select_related("location", "provider", "appointment_type")
        .filter(pk=target.appointment_id, patient_id=target.patient_id)
        .first()
    )
    if appointment is None:
        return _refused(request, "invalid")
    if target.action == "confirm":
        return _confirm(request, target, appointment)
    return _reschedule(request, target, appointment)


# The random code is the credential (permissions.SIGNED_ROUTES): an unknown one is 403.
link.careloop_signed_webhook = True  # type: ignore[attr-defined]


def _confirm(request: HttpRequest, target: LinkTarget, appointment: Appointment) -> HttpResponse:
    state = "ask"
    if appointment.status == AppointmentStatus.CONFIRMED:
        state = "confirmed"
    elif appointment.status not in OPEN or appointment.start <= now():
        state = "closed"
    elif request.method == "POST":
        with transaction.atomic():
            changed = Appointment.objects.filter(
                pk=appointment.pk, status=AppointmentStatus.BOOKED
            ).update(status=AppointmentStatus.CONFIRMED)
            if changed:
                timeline_add(
                    patient=appointment.patient,
                    kind=TimelineKind.APPOINTMENT,
                    summary="Appointment confirmed by the patient (link in a reminder)",
                    ref_type="appointment",
                    ref_id=str(appointment.pk),
                )
                audit_record(
                    action="appointment.confirm",
                    actor_kind="patient",
                    actor_id=str(target.patient_id),
                    patient_id=target.patient_id,
                    resource_type="appointment",
                    resource_id=str(appointment.pk),
                )
        journeys_wake(patient_id=target.patient_id)
        state = "confirmed"
    return _page(request, {"action": "confirm", "state": state, "appointment": appointment})


def _reschedule(request: HttpRequest, target: LinkTarget, appointment: Appointment) -> HttpResponse:
    timeline_add(
        patient=appointment.patient,
        kind=TimelineKind.APPOINTMENT,
        summary="Opened a reschedule link",
        ref_type="appointment",
        ref_id=str(appointment.pk),
    )
    return _page(request, {"action": "reschedule", "appointment": appointment})
