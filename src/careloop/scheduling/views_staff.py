"""The staff calendar: day, week and provider views; an appointment's page with its
status changes and rescheduling (also by dragging on the grid); booking from the
patient's page.

Ids in query strings are UUIDs only (no PHI in a URL); an unknown one is a 404. Every
change goes through careloop.scheduling.booking; a time that was just taken, or is
not a slot, answers with the reason and the next free times, never an error page; a
type the user's role may not book answers with that sentence.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from careloop.core import clock
from careloop.core.errors import NotFound
from careloop.core.web import staff_page
from careloop.patients.selectors import patient_get
from careloop.scheduling import booking
from careloop.scheduling.calendar import (
    WEEK,
    appointment_block,
    appointment_for_staff,
    calendar_agenda,
    calendar_day,
    calendar_location,
    calendar_locations,
    calendar_provider,
    calendar_week,
    location_providers,
    type_colours,
)
from careloop.scheduling.forms_staff import (
    DEFAULT_SEARCH_DAYS,
    BookingSearchForm,
    parse_slot,
    parse_start,
    slot_value,
)
from careloop.scheduling.models import Appointment, AppointmentType, Location, Provider
from careloop.scheduling.slots import Slot, slots_search
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Actor, Op, Resource, actor_allowed

DAY = datetime.timedelta(days=1)
# Free times offered on one page (reschedule, book).
SLOTS_SHOWN = 40
STATUS_CHANGES = {
    "check_in": (booking.appointment_check_in, "Checked in."),
    "complete": (booking.appointment_complete, "Marked as arrived and completed."),
    "no_show": (booking.appointment_no_show, "Marked as a no-show."),
    "cancel": (booking.appointment_cancel, "Cancelled; the time is free again."),
}


# --- parsing ----------------------------------------------------------------------------


def _uuid(value: str | None) -> uuid.UUID | None:
    """An id from a query string or form; a malformed one names nothing (404)."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound from None


def _date(request: HttpRequest, zone: ZoneInfo) -> datetime.date:
    """`?date=YYYY-MM-DD`, else today where the location is; a bad one says so."""
    today = clock.now().astimezone(zone).date()
    raw = request.GET.get("date", "")
    if not raw:
        return today
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        messages.error(request, "That is not a date (use YYYY-MM-DD); showing today.")
        return today


def _query(**params: Any) -> str:
    pairs = [(k, v) for k, values in params.items() for v in _listed(values) if v not in ("", None)]
    return "?" + urlencode(pairs)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _when(moment: datetime.datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %b} {local.day}, {local:%I:%M %p}".replace(" 0", " ")


def _can_write(actor: Actor) -> bool:
    return actor_allowed(actor, Op.WRITE, Resource.APPOINTMENTS)


# --- the calendar -----------------------------------------------------------------------


@require_safe
@staff_page(Op.READ, Resource.APPOINTMENTS)
def day_view(request: HttpRequest) -> HttpResponse:
    location = calendar_location(location_id=_uuid(request.GET.get("location")))
    zone = ZoneInfo(location.time_zone)
    day = _date(request, zone)
    everyone = location_providers(location)
    chosen_ids = {_uuid(v) for v in request.GET.getlist("provider") if v}
    if chosen_ids - {p.pk for p in everyone}:
        raise NotFound
    providers = [p for p in everyone if p.pk in chosen_ids] if chosen_ids else everyone
    cancelled = request.GET.get("cancelled") == "1"
    grid = calendar_day(
        actor=request.user,
        location=location,
        providers=providers,
        day=day,
        show_cancelled=cancelled,
    )
    keep = {
        "location": location.pk,
        "provider": [p.pk for p in providers] if chosen_ids else [],
        "cancelled": "1" if cancelled else "",
    }
    context = {
        "view": "day",
        "grid": grid,
        "day": day,
        "location": location,
        "locations": calendar_locations(),
        "everyone": everyone,
        "chosen": chosen_ids,
        "cancelled": cancelled,
        "nav": _nav("schedule:day", keep, day, DAY, zone),
        "can_write": _can_write(request.user),
    }
    with timezone.override(zone):
        return render(request, "schedule/day.html", context)


@require_safe
@staff_page(Op.READ, Resource.APPOINTMENTS)
def week_view(request: HttpRequest) -> HttpResponse:
    provider = calendar_provider(provider_id=_uuid(request.GET.get("provider")))
    zone = ZoneInfo(provider.location.time_zone)
    day = _date(request, zone)
    monday = day - datetime.timedelta(days=day.weekday())
    cancelled = request.GET.get("cancelled") == "1"
    grid = calendar_week(
        actor=request.user,
        provider=provider,
        zone=zone,
        week_start=monday,
        show_cancelled=cancelled,
    )
    keep = {"provider": provider.pk, "cancelled": "1" if cancelled else ""}
    context = {
        "view": "week",
        "grid": grid,
        "day": monday,
        "last_day": monday + datetime.timedelta(days=WEEK - 1),
        "provider": provider,
        "providers": Provider.objects.filter(active=True),
        "cancelled": cancelled,
        "nav": _nav("schedule:week", keep, monday, WEEK * DAY, zone),
        "can_write": _can_write(request.user),
    }
    with timezone.override(zone):
        return render(request, "schedule/week.html", context)


@require_safe
@staff_page(Op.READ, Resource.APPOINTMENTS)
def provider_view(request: HttpRequest) -> HttpResponse:
    provider = calendar_provider(provider_id=_uuid(request.GET.get("provider")))
    zone = ZoneInfo(provider.location.time_zone)
    day = _date(request, zone)
    cancelled = request.GET.get("cancelled") == "1"
    agenda = calendar_agenda(
        actor=request.user, provider=provider, zone=zone, first_day=day, show_cancelled=cancelled
    )
    keep = {"provider": provider.pk, "cancelled": "1" if cancelled else ""}
    context = {
        "view": "provider",
        "agenda": agenda,
        "day": day,
        "provider": provider,
        "providers": Provider.objects.filter(active=True),
        "cancelled": cancelled,
        "colours": type_colours(),
        "nav": _nav("schedule:provider", keep, day, WEEK * DAY, zone),
        "can_write": _can_write(request.user),
    }
    with timezone.override(zone):
        return render(request, "schedule/provider.html", context)


def _nav(
    route: str, keep: dict[str, Any], day: datetime.date, step: datetime.timedelta, zone: ZoneInfo
) -> dict[str, str]:
    base = reverse(route)
    today = clock.now().astimezone(zone).date()
    return {
        "previous": base + _query(**keep, date=(day - step).isoformat()),
        "today": base + _query(**keep, date=today.isoformat()),
        "next": base + _query(**keep, date=(day + step).isoformat()),
    }


# --- one appointment --------------------------------------------------------------------


def _zone(appointment: Appointment) -> ZoneInfo:
    return ZoneInfo(appointment.location.time_zone)


def _reschedule_slots(
    appointment: Appointment, provider: Provider, first: datetime.date
) -> list[Slot]:
    return slots_search(
        appointment_type=appointment.appointment_type,
        providers=[provider],
        locations=[appointment.location],
        start_date=first,
        end_date=first + datetime.timedelta(days=DEFAULT_SEARCH_DAYS - 1),
    )[:SLOTS_SHOWN]


def _appointment_page(
    request: HttpRequest,
    appointment: Appointment,
    *,
    problem: str = "",
    alternatives: list[Slot] | None = None,
    status: int = 200,
) -> HttpResponse:
    zone = _zone(appointment)
    provider = appointment.provider
    chosen = _uuid(request.GET.get("provider"))
    colleagues = location_providers(appointment.location)
    if chosen is not None:
        matches = [p for p in colleagues if p.pk == chosen]
        if not matches:
            raise NotFound
        provider = matches[0]
    if request.method == "GET" and "date" in request.GET:
        first = _date(request, zone)
    else:
        today = clock.now().astimezone(zone).date()
        first = max(appointment.start.astimezone(zone).date(), today)
    slots = (
        alternatives
        if alternatives is not None
        else _reschedule_slots(appointment, provider, first)
    )
    audit_record(
        action="patient.view",
        actor=request.user,
        patient_id=appointment.patient_id,
        resource_type="Appointment",
        resource_id=str(appointment.pk),
        fields=("name", "appointment_time", "appointment_type", "appointment_status"),
    )
    context = {
        "a": appointment,
        "zone": zone,
        "problem": problem,
        "slots": [(slot_value(s.provider_id, s.start), s) for s in slots],
        "offered_alternatives": alternatives is not None,
        "provider": provider,
        "colleagues": colleagues,
        "first": first,
        "can_write": _can_write(request.user),
        "movable": appointment.status in booking.OPEN,
        "can_complete": appointment.status in booking.ARRIVED,
    }
    with timezone.override(zone):
        return render(request, "schedule/appointment.html", context, status=status)


@require_safe
@staff_page(Op.READ, Resource.APPOINTMENTS)
def appointment_page(request: HttpRequest, appointment_id: uuid.UUID) -> HttpResponse:
    appointment = appointment_for_staff(actor=request.user, appointment_id=appointment_id)
    return _appointment_page(request, appointment)


@require_POST
@staff_page(Op.WRITE, Resource.APPOINTMENTS)
def appointment_status(request: HttpRequest, appointment_id: uuid.UUID) -> HttpResponse:
    appointment = appointment_for_staff(actor=request.user, appointment_id=appointment_id)
    page = reverse("schedule:appointment", kwargs={"appointment_id": appointment.pk})
    change = STATUS_CHANGES.get(request.POST.get("action", ""))
    if change is None:
        messages.error(request, "Choose a change: check in, complete, no-show or cancel.")
        return redirect(page)
    service, done = change
    try:
        service(actor=request.user, appointment=appointment)
    except booking.AppointmentStateError as refused:
        messages.error(request, f"Not changed: {refused}.")
        return redirect(page)
    messages.success(request, done)
    return redirect(page)


@require_POST
@staff_page(Op.WRITE, Resource.APPOINTMENTS)
def appointment_move(request: HttpRequest, appointment_id: uuid.UUID) -> HttpResponse:
    """Reschedule, from the appointment's page (a chosen slot) or from a drop on the
    grid (`start` and `provider`, answered in JSON)."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    appointment = appointment_for_staff(actor=request.user, appointment_id=appointment_id)
    zone = _zone(appointment)
    target = _target(request.POST, appointment, zone)
    if target is None:
        problem = "Choose a new time for the appointment."
        if wants_json:
            return JsonResponse({"ok": False, "message": problem, "alternatives": []}, status=400)
        return _appointment_page(request, appointment, problem=problem)
    provider, start = target
    try:
        moved = booking.appointment_reschedule(
            actor=request.user, appointment=appointment, provider=provider, start=start
        )
    except booking.SlotUnavailable as refused:
        problem = f"Not moved: {refused}."
        if wants_json:
            times = [_when(s.start, zone) for s in refused.alternatives]
            body = {"ok": False, "message": problem, "alternatives": times}
            return JsonResponse(body, status=409)
        return _appointment_page(
            request, appointment, problem=problem, alternatives=refused.alternatives
        )
    except (booking.AppointmentStateError, booking.RoleMayNotBook) as refused:
        problem = f"Not moved: {refused}."
        if wants_json:
            return JsonResponse({"ok": False, "message": problem, "alternatives": []}, status=409)
        return _appointment_page(request, appointment, problem=problem)
    done = f"Moved to {_when(moved.start, zone)} with {moved.provider.display_name}."
    if wants_json:
        block = appointment_block(actor=request.user, appointment=moved, zone=zone)
        with timezone.override(zone):
            html = render_to_string(
                "schedule/_block.html", {"b": block, "can_write": True}, request=request
            )
        return JsonResponse({"ok": True, "message": done, "id": str(moved.pk), "block": html})
    messages.success(request, done)
    return redirect(reverse("schedule:appointment", kwargs={"appointment_id": moved.pk}))


def _target(
    data: QueryDict, appointment: Appointment, zone: ZoneInfo
) -> tuple[Provider, datetime.datetime] | None:
    """The provider and start a reschedule asks for: a chosen `slot`, or a `start`
    (and `provider`) from a drop. An unknown provider is a 404."""
    slot = parse_slot(data.get("slot"))
    if slot is not None:
        provider_id, start = slot
    else:
        moment = parse_start(data.get("start"), zone)
        if moment is None:
            return None
        provider_id, start = _uuid(data.get("provider")) or appointment.provider_id, moment
    provider = Provider.objects.filter(pk=provider_id, active=True).first()
    if provider is None:
        raise NotFound
    return provider, start


# --- booking from the patient's page ----------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.APPOINTMENTS)
def book_page(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """GET: find free times (type, location, provider, dates); POST: book one."""
    patient = patient_get(actor=request.user, patient_id=patient_id)
    audit_record(
        action="patient.view",
        actor=request.user,
        patient_id=patient.pk,
        resource_type="Patient",
        resource_id=str(patient.pk),
        fields=("name",),
    )
    problem = ""
    slots: list[Slot] = []
    if request.method == "POST":
        form = BookingSearchForm(_search_data(request.POST))
        booked, problem, slots = _book(request, form, patient)
        if booked is not None:
            zone = ZoneInfo(booked.location.time_zone)
            messages.success(
                request,
                f"Booked {booked.appointment_type.name} on {_when(booked.start, zone)} "
                f"with {booked.provider.display_name}.",
            )
            return redirect(reverse("schedule:appointment", kwargs={"appointment_id": booked.pk}))
    elif "appointment_type" in request.GET:
        form = BookingSearchForm(request.GET)
        if form.is_valid():
            kind = form.cleaned_data["appointment_type"]
            if isinstance(request.user, User) and not kind.bookable_by(request.user.role):
                problem = f"Your role may not book {kind.name} visits; choose another type."
            else:
                slots = _free(form.cleaned_data)
    else:
        form = BookingSearchForm(initial=_search_initial())
    zone = _form_zone(form)
    providers = {p.pk: p for p in Provider.objects.filter(pk__in={s.provider_id for s in slots})}
    context = {
        "patient": patient,
        "form": form,
        "problem": problem,
        "slots": [
            (slot_value(s.provider_id, s.start), s, providers.get(s.provider_id)) for s in slots
        ],
        "searched": bool(slots) or "appointment_type" in request.GET or bool(problem),
        "zone": zone,
    }
    with timezone.override(zone):
        return render(request, "schedule/book.html", context)


def _search_initial() -> dict[str, Any]:
    today = clock.now().date()
    return {
        "start_date": today,
        "end_date": today + datetime.timedelta(days=DEFAULT_SEARCH_DAYS - 1),
        "location": Location.objects.first(),
        "appointment_type": AppointmentType.objects.first(),
    }


def _search_data(data: QueryDict) -> dict[str, Any]:
    """The search form's fields carried along with a chosen slot."""
    return {name: data.get(name, "") for name in BookingSearchForm.base_fields}


def _form_zone(form: BookingSearchForm) -> ZoneInfo:
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    location = data.get("location") or Location.objects.first()
    return ZoneInfo(location.time_zone) if location else timezone.get_current_timezone()


def _free(data: dict[str, Any]) -> list[Slot]:
    provider = data.get("provider")
    return slots_search(
        appointment_type=data["appointment_type"],
        providers=[provider] if provider else None,
        locations=[data["location"]],
        start_date=data["start_date"],
        end_date=data["end_date"],
    )[:SLOTS_SHOWN]


def _book(
    request: HttpRequest, form: BookingSearchForm, patient: Any
) -> tuple[Appointment | None, str, list[Slot]]:
    """(the booking, "", []) or (None, the reason, the times to offer instead)."""
    if not form.is_valid():
        return None, "Check the search fields, then choose a time.", []
    chosen = parse_slot(request.POST.get("slot"))
    if chosen is None:
        return None, "Choose one of the free times.", _free(form.cleaned_data)
    provider_id, start = chosen
    provider = Provider.objects.filter(pk=provider_id, active=True).first()
    if provider is None:
        raise NotFound
    try:
        booked = booking.appointment_book(
            actor=request.user,
            patient=patient,
            appointment_type=form.cleaned_data["appointment_type"],
            provider=provider,
            location=form.cleaned_data["location"],
            start=start,
        )
    except booking.SlotUnavailable as refused:
        return None, f"Not booked: {refused}.", refused.alternatives
    except booking.RoleMayNotBook as refused:
        return None, f"Not booked: {refused}.", []
    return booked, "", []
