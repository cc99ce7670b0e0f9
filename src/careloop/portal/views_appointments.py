"""Portal pages for appointments: the home page's sections, self-scheduling, confirm,
reschedule, cancel, add to calendar, check in, join a telehealth visit, and the record
switcher of a proxy (a parent, a caregiver).

Every page acts for one record: the account's own or the one chosen in the switcher
(careloop.portal.proxy), with the power the action needs (`view` to see, `schedule` to
book or change). Another record's appointment id answers 404, like one that does not
exist. A refusal (too late to change online, a visit already completed, a slot just
taken) is a page that says so and what to do, never an error page.
"""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.outreach.ics import appointment_ics
from careloop.patients.models import ContactPoint, ContactSystem, Coverage, CoverageStatus
from careloop.portal import accounts
from careloop.portal.booking import (
    CheckInAnswers,
    PortalRefused,
    Refusal,
    change_refusal,
    check_in_open,
    check_in_window,
    portal_appointment,
    portal_book,
    portal_cancel,
    portal_check_in,
    portal_confirm,
    portal_reschedule,
)
from careloop.portal.models import PortalAccount
from careloop.portal.proxy import Grant, Power, portal_acting, portal_acting_choose, proxy_grants
from careloop.portal.reminders import care_reminders, portal_tasks
from careloop.portal.web import portal_page
from careloop.scheduling.booking import AppointmentStateError, SlotUnavailable
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
)
from careloop.scheduling.slots import Slot, slots_search
from careloop.security.audit import audit_record

FORM_METHODS = ["GET", "HEAD", "POST"]
# Slot search shows a week from the chosen date; a reschedule, two.
SEARCH_DAYS = 7
RESCHEDULE_DAYS = 14
MAX_SLOTS = 60


def _refusal_text(reason: Refusal, appointment: Appointment | None = None) -> str:
    phone = getattr(settings, "PRACTICE_PHONE", "")
    call = _("Please call us at %(phone)s.") % {"phone": phone} if phone else _("Please call us.")
    if reason == Refusal.NOT_SELF_BOOKABLE:
        return _("This kind of visit cannot be booked online.") + " " + call
    if reason == Refusal.PAST:
        return _("This appointment has already started or taken place.")
    if reason == Refusal.TOO_LATE:
        return _("It is too close to the visit to change it online.") + " " + call
    if reason == Refusal.CHECK_IN_CLOSED:
        return _("Online check-in opens two hours before your visit, on the day of the visit.")
    return _status_text(appointment) if appointment is not None else call


def _status_text(appointment: Appointment) -> str:
    """Why an appointment in its status cannot be changed, in the patient's words."""
    status = appointment.status
    if status == AppointmentStatus.FULFILLED:
        return _("This visit has already taken place, so it cannot be changed or cancelled.")
    if status == AppointmentStatus.CANCELLED:
        return _("This appointment is already cancelled.")
    if status == AppointmentStatus.CHECKED_IN:
        return _("You are checked in for this visit, so it cannot be changed online.")
    if status == AppointmentStatus.NO_SHOW:
        return _("This visit was missed, so it cannot be changed. You can book a new one.")
    return _("This appointment cannot be changed online.")


# --- telehealth: careloop.scheduling.telehealth, imported when it is there ---------------


@dataclass(frozen=True)
class Join:
    url: str  # the visit's link, when it may be joined now
    reason: str  # why not, in the patient's words


def _join_reason(code: str) -> str:
    reasons = {
        "too_early": _("You can join 15 minutes before the start."),
        "ended": _("This video visit has ended."),
        "cancelled": _("This video visit was cancelled."),
        "no_consent": _(
            "Before your first video visit we need your consent to telehealth. Please sign "
            "it in the portal or call us."
        ),
    }
    return reasons.get(code, _("This visit cannot be joined online."))


def telehealth_join_for(*, request: HttpRequest, appointment: Appointment) -> Join:
    """The join link of a telehealth visit (careloop.scheduling.telehealth decides and
    audits); without that module, the time it opens."""
    try:
        from careloop.scheduling.telehealth import telehealth_join
    except ImportError:
        return Join("", _join_reason("too_early"))
    answer = telehealth_join(patient=appointment.patient, appointment=appointment, request=request)
    if answer.url:
        return Join(answer.url, "")
    return Join("", _join_reason(str(answer.reason or "")))


# --- the home page's sections -------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    appointment: Appointment
    can_confirm: bool
    can_change: bool
    can_check_in: bool
    telehealth: bool


def _cards(appointments: list[Appointment], grant: Grant) -> list[Card]:
    at = now()
    schedule = grant.allows(Power.SCHEDULE)
    return [
        Card(
            appointment=a,
            can_confirm=schedule and a.status == AppointmentStatus.BOOKED and a.start > at,
            can_change=schedule and change_refusal(a, at) is None,
            can_check_in=schedule and check_in_open(a, at),
            telehealth=a.appointment_type.telehealth,
        )
        for a in appointments
    ]


def home_sections(*, request: HttpRequest, account: PortalAccount) -> dict[str, Any]:
    """What the home page shows for the record it acts for: the switcher, upcoming
    appointments with what the patient may do with each, care reminders and tasks."""
    grant = portal_acting(request=request, account=account, power=None)
    patient = grant.patient
    sees = grant.allows(Power.VIEW)
    appointments: list[Appointment] = []
    if sees or grant.allows(Power.SCHEDULE):
        appointments = accounts.portal_appointments_upcoming(
            request=request, account=account, patient=patient
        )
    return {
        "grants": proxy_grants(account),
        "acting": grant,
        "first_name": account.patient.preferred_name or account.patient.given_name,
        "acting_name": patient.preferred_name or patient.given_name,
        "cards": _cards(appointments, grant),
        "appointments": appointments,
        "reminders": care_reminders(request=request, patient=patient) if sees else [],
        "tasks": portal_tasks(request=request, patient=patient) if sees else [],
        "can_book": grant.allows(Power.SCHEDULE),
        "time_zone": patient.time_zone,
    }


@require_POST
@portal_page
def acting_switch(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    """The record switcher: act for the chosen record from now on."""
    try:
        patient_id = uuid.UUID(request.POST.get("patient", ""))
    except ValueError:
        return HttpResponseRedirect(reverse("portal:home"))
    grant = portal_acting_choose(request=request, account=account, patient_id=patient_id)
    if not grant.own:
        audit_record(
            action="portal.proxy_access",
            request=request,
            patient_id=grant.patient.pk,
            resource_type="proxy_for",
            resource_id=str(account.patient_id),
            fields=("switch",),
        )
    return HttpResponseRedirect(reverse("portal:home"))


# --- one appointment ----------------------------------------------------------------------


def _in_zone(appointment: Appointment) -> zoneinfo.ZoneInfo:
    """Times on the portal's pages are in the patient's zone, as on the home page."""
    return ZoneInfo(appointment.patient.time_zone)


def _home_with(request: HttpRequest, text: str) -> HttpResponse:
    messages.info(request, text)
    return HttpResponseRedirect(reverse("portal:home"))


@never_cache
@require_GET
@portal_page
def appointment_calendar(
    request: HttpRequest, account: PortalAccount, appointment_id: uuid.UUID
) -> HttpResponse:
    """The visit as an .ics file to add to the patient's own calendar."""
    appointment = portal_appointment(
        request=request, account=account, appointment_id=appointment_id, power=Power.VIEW
    )
    body = appointment_ics(appointment, attendee="")
    response = HttpResponse(_published(body), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="appointment.ics"'
    return response


def _published(invitation: bytes) -> bytes:
    """The e-mail invitation (METHOD:REQUEST, to an attendee) as a calendar file the
    patient imports (METHOD:PUBLISH, no attendee): unfold, drop, fold back as it was."""
    lines = invitation.decode().replace("\r\n ", "\x00").split("\r\n")
    kept = []
    for line in lines:
        if line.startswith("ATTENDEE"):
            continue
        kept.append("METHOD:PUBLISH" if line == "METHOD:REQUEST" else line)
    return "\r\n".join(kept).replace("\x00", "\r\n ").encode()


@require_POST
@portal_page
def appointment_confirm(
    request: HttpRequest, account: PortalAccount, appointment_id: uuid.UUID
) -> HttpResponse:
    appointment = portal_appointment(
        request=request, account=account, appointment_id=appointment_id, power=Power.SCHEDULE
    )
    try:
        portal_confirm(account=account, appointment=appointment)
    except PortalRefused as refused:
        return _home_with(request, _refusal_text(refused.reason, appointment))
    return _home_with(request, _("Thank you: your appointment is confirmed."))


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def appointment_cancel(
    request: HttpRequest, account: PortalAccount, appointment_id: uuid.UUID
) -> HttpResponse:
    appointment = portal_appointment(
        request=request, account=account, appointment_id=appointment_id, power=Power.SCHEDULE
    )
    refused = change_refusal(appointment)
    error = _refusal_text(refused, appointment) if refused is not None else ""
    if request.method == "POST" and refused is None:
        try:
            portal_cancel(account=account, appointment=appointment)
        except PortalRefused as late:
            error = _refusal_text(late.reason, appointment)
        except AppointmentStateError:
            appointment.refresh_from_db()
            error = _status_text(appointment)
        else:
            return _home_with(request, _("Your appointment is cancelled."))
    with timezone.override(_in_zone(appointment)):
        return render(
            request,
            "portal/appointments/cancel.html",
            {"appointment": appointment, "error": error, "refused": bool(error)},
        )


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def appointment_reschedule(
    request: HttpRequest, account: PortalAccount, appointment_id: uuid.UUID
) -> HttpResponse:
    appointment = portal_appointment(
        request=request, account=account, appointment_id=appointment_id, power=Power.SCHEDULE
    )
    refused = change_refusal(appointment)
    error = _refusal_text(refused, appointment) if refused is not None else ""
    slots: list[Slot] = []
    if refused is None and request.method == "POST":
        start = _instant(request.POST.get("start", ""))
        if start is None:
            error = _("Please choose a new time.")
        else:
            try:
                portal_reschedule(account=account, appointment=appointment, start=start)
            except SlotUnavailable as taken:
                error = _("Sorry, that time was just taken. Here are the next free times.")
                slots = taken.alternatives
            except PortalRefused as late:
                error = _refusal_text(late.reason, appointment)
            except AppointmentStateError:
                appointment.refresh_from_db()
                error = _status_text(appointment)
            else:
                return _home_with(request, _("Your appointment has a new time."))
    if refused is None and not slots:
        day = now().astimezone(_in_zone(appointment)).date()
        slots = slots_search(
            appointment_type=appointment.appointment_type,
            providers=[appointment.provider_id],
            locations=[appointment.location_id],
            start_date=day,
            end_date=day + datetime.timedelta(days=RESCHEDULE_DAYS),
        )[:MAX_SLOTS]
    with timezone.override(_in_zone(appointment)):
        return render(
            request,
            "portal/appointments/reschedule.html",
            {
                "appointment": appointment,
                "error": error,
                "refused": refused is not None,
                "slots": _slot_rows(slots),
            },
        )


class CheckInForm(forms.Form):
    demographics = forms.ChoiceField(choices=[("correct", "correct"), ("update", "update")])
    insurance = forms.ChoiceField(choices=[("correct", "correct"), ("update", "update")])


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def appointment_check_in(
    request: HttpRequest, account: PortalAccount, appointment_id: uuid.UUID
) -> HttpResponse:
    """On the visit's day: confirm the details on file, the insurance and the forms,
    then check in."""
    appointment = portal_appointment(
        request=request, account=account, appointment_id=appointment_id, power=Power.SCHEDULE
    )
    patient = appointment.patient
    form = CheckInForm(request.POST if request.method == "POST" else None)
    error = ""
    is_open = check_in_open(appointment)
    if not is_open:
        error = (
            _status_text(appointment)
            if appointment.status not in (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
            else _refusal_text(Refusal.CHECK_IN_CLOSED)
        )
    tasks = [t for t in portal_tasks(request=request, patient=patient) if t.kind == "form"]
    if request.method == "POST" and is_open:
        if not form.is_valid():
            error = _("Please answer both questions.")
        elif tasks:
            error = _("Please fill in your forms first.")
        else:
            answers = CheckInAnswers(
                demographics_correct=form.cleaned_data["demographics"] == "correct",
                insurance_correct=form.cleaned_data["insurance"] == "correct",
            )
            try:
                portal_check_in(account=account, appointment=appointment, answers=answers)
            except PortalRefused as closed:
                error = _refusal_text(closed.reason, appointment)
            except AppointmentStateError:
                appointment.refresh_from_db()
                error = _status_text(appointment)
            else:
                return _home_with(request, _("You are checked in. Please have a seat."))
    opens, _closes = check_in_window(appointment)
    on_file = _details_on_file(request, patient) if is_open else {}
    with timezone.override(_in_zone(appointment)):
        return render(
            request,
            "portal/appointments/check_in.html",
            {
                "appointment": appointment,
                "error": error,
                "open": is_open,
                "opens": opens,
                "form": form,
                "tasks": tasks,
                **on_file,
            },
        )


def _details_on_file(request: HttpRequest, patient: Any) -> dict[str, Any]:
    """Name, address, phone and insurance on file, for the patient to confirm (audited)."""
    phone = (
        ContactPoint.objects.filter(patient=patient, system=ContactSystem.PHONE)
        .order_by("rank")
        .first()
    )
    coverage = (
        Coverage.objects.filter(patient=patient, status=CoverageStatus.ACTIVE)
        .order_by("rank")
        .first()
    )
    audit_record(
        action="patient.view",
        request=request,
        patient_id=patient.pk,
        resource_type="check_in",
        fields=("name", "address", "phone", "coverage"),
    )
    address = ", ".join(
        part
        for part in (patient.address_line, patient.city, patient.state, patient.postal_code)
        if part
    )
    return {
        "name": patient.display_name,
        "address": address,
        "phone": phone.value if phone else "",
        "coverage": coverage,
    }


@never_cache
@require_GET
@portal_page
def appointment_join(
    request: HttpRequest, account: PortalAccount, appointment_id: uuid.UUID
) -> HttpResponse:
    """Join a telehealth visit: to the video link when it is open, else a page that says
    when it will be."""
    appointment = portal_appointment(
        request=request, account=account, appointment_id=appointment_id, power=Power.VIEW
    )
    if not appointment.appointment_type.telehealth:
        raise NotFound("not a telehealth visit")
    join = telehealth_join_for(request=request, appointment=appointment)
    if join.url:
        return HttpResponseRedirect(join.url)
    with timezone.override(_in_zone(appointment)):
        return render(
            request,
            "portal/appointments/join.html",
            {"appointment": appointment, "reason": join.reason},
        )


# --- self-scheduling ----------------------------------------------------------------------


def _instant(value: str) -> datetime.datetime | None:
    """A slot's start as carried in a form or link: whole seconds since 1970 (UTC)."""
    try:
        seconds = int(value)
    except ValueError:
        return None
    if not 0 < seconds < 2**33:
        return None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


@dataclass(frozen=True)
class SlotRow:
    slot: Slot
    start: datetime.datetime
    key: str
    provider: str
    location: str


def _slot_rows(slots: list[Slot]) -> list[SlotRow]:
    """Slots with their provider's and place's names (two queries for the lot)."""
    providers = dict(
        Provider.objects.filter(pk__in={s.provider_id for s in slots}).values_list(
            "pk", "display_name"
        )
    )
    locations = dict(
        Location.objects.filter(pk__in={s.location_id for s in slots}).values_list("pk", "name")
    )
    return [
        SlotRow(
            slot=slot,
            start=slot.start,
            key=str(int(slot.start.timestamp())),
            provider=providers.get(slot.provider_id, ""),
            location=locations.get(slot.location_id, ""),
        )
        for slot in slots
    ]


def _self_bookable() -> list[AppointmentType]:
    return list(AppointmentType.objects.filter(self_bookable=True).order_by("name"))


class SearchForm(forms.Form):
    type = forms.ChoiceField()
    location = forms.ChoiceField(required=False)
    provider = forms.ChoiceField(required=False)
    date = forms.DateField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        any_choice: list[tuple[str, Any]] = [("", gettext_lazy("Any"))]
        choices: dict[str, list[tuple[str, Any]]] = {
            "type": [(t.code, t.name) for t in _self_bookable()],
            "location": any_choice
            + [(str(pk), name) for pk, name in Location.objects.values_list("pk", "name")],
            "provider": any_choice
            + [
                (str(pk), name)
                for pk, name in Provider.objects.filter(active=True).values_list(
                    "pk", "display_name"
                )
            ],
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)  # noqa: S101 - declared above
            field.choices = options


def _grant_for_scheduling(request: HttpRequest, account: PortalAccount) -> Grant:
    return portal_acting(request=request, account=account, power=Power.SCHEDULE)


@never_cache
@require_GET
@portal_page
def book(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    """Choose a type, a place, a provider (or any) and a date; the free slots of the
    week from that date, each leading to the confirmation page."""
    grant = _grant_for_scheduling(request, account)
    searched = "type" in request.GET
    form = SearchForm(request.GET if searched else None)
    rows: list[tuple[SlotRow, str]] = []
    error = ""
    types = _self_bookable()
    if searched and form.is_valid():
        kind = AppointmentType.objects.get(pk=form.cleaned_data["type"])
        today = now().astimezone(ZoneInfo(grant.patient.time_zone)).date()
        first = max(form.cleaned_data["date"] or today, today)
        found = slots_search(
            appointment_type=kind,
            providers=[uuid.UUID(form.cleaned_data["provider"])]
            if form.cleaned_data["provider"]
            else None,
            locations=[uuid.UUID(form.cleaned_data["location"])]
            if form.cleaned_data["location"]
            else None,
            start_date=first,
            end_date=first + datetime.timedelta(days=SEARCH_DAYS - 1),
        )
        rows = [(row, _confirm_url(kind, row)) for row in _slot_rows(found[:MAX_SLOTS])]
        if not rows:
            error = _("No free times that week. Try a later date or another provider.")
    elif searched:
        error = _("Please choose a kind of visit and a valid date.")
    with timezone.override(ZoneInfo(grant.patient.time_zone)):
        return render(
            request,
            "portal/appointments/book.html",
            {
                "form": form,
                "types": types,
                "rows": rows,
                "error": error,
                "acting": grant,
                "type_code": form.data.get("type", "") if searched else "",
            },
        )


def _requirements(kind: AppointmentType) -> list[str]:
    """What the patient should know or do before a visit of this type."""
    needs = []
    if kind.new_patient:
        needs.append(_("This visit is for new patients: please arrive 15 minutes early."))
    if kind.telehealth:
        needs.append(
            _(
                "This is a video visit: you will find the link on your portal home page, "
                "15 minutes before the start."
            )
        )
    needs.append(_("Bring your insurance card and a photo ID."))
    if apps.is_installed("careloop.intake"):
        from careloop.intake.selectors import questionnaire_title

        # A practice has a handful of forms; JSON containment is not portable (SQLite).
        questionnaire = apps.get_model("intake", "Questionnaire")
        for form in questionnaire.objects.filter(status="active").order_by("title"):
            if kind.code in (form.required_for_types or []):
                title = questionnaire_title(form)  # in the patient's language
                needs.append(_("Fill in the form before your visit: %(title)s") % {"title": title})
    return needs


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def book_confirm(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    """The chosen slot with the visit's requirements; POST books it. A slot taken
    meanwhile gives the next free ones on the same page."""
    data = request.POST if request.method == "POST" else request.GET
    grant = _grant_for_scheduling(request, account)
    kind = AppointmentType.objects.filter(pk=data.get("type", ""), self_bookable=True).first()
    provider = _by_id(Provider.objects.filter(active=True), data.get("provider", ""))
    location = _by_id(Location.objects.all(), data.get("location", ""))
    start = _instant(data.get("start", ""))
    if kind is None or provider is None or location is None or start is None:
        return _chosen_page(
            request, grant, None, error=_("That time could not be found. Please search again.")
        )
    chosen = Slot(start, start + datetime.timedelta(minutes=kind.minutes), provider.pk, location.pk)
    error = ""
    alternatives: list[Slot] = []
    if request.method == "POST":
        if data.get("patient") != str(grant.patient.pk):
            # The switcher changed in another tab: book for nobody by surprise.
            error = _("You switched to another person's record. Please check and book again.")
        else:
            try:
                portal_book(
                    account=account,
                    patient=grant.patient,
                    appointment_type=kind,
                    provider=provider,
                    location=location,
                    start=start,
                )
            except SlotUnavailable as taken:
                error = _("Sorry, that time was just taken. Here are the next free times.")
                alternatives = taken.alternatives
            except PortalRefused as refused:
                error = _refusal_text(refused.reason)
            else:
                return _home_with(
                    request, _("Your appointment is booked. We sent you a confirmation.")
                )
    return _chosen_page(
        request,
        grant,
        (kind, provider, location, chosen),
        error=error,
        alternatives=alternatives,
    )


def _by_id(rows: Any, value: str) -> Any:
    try:
        return rows.filter(pk=uuid.UUID(value)).first()
    except ValueError:
        return None


def _chosen_page(
    request: HttpRequest,
    grant: Grant,
    chosen: tuple[AppointmentType, Provider, Location, Slot] | None,
    *,
    error: str,
    alternatives: list[Slot] | None = None,
) -> HttpResponse:
    context: dict[str, Any] = {"error": error, "acting": grant, "chosen": None}
    if chosen is not None:
        kind, provider, location, slot = chosen
        context |= {
            "chosen": _slot_rows([slot])[0],
            "kind": kind,
            "provider": provider,
            "location": location,
            "requirements": _requirements(kind),
            "alternatives": [
                (row, _confirm_url(kind, row)) for row in _slot_rows(alternatives or [])
            ],
        }
    with timezone.override(ZoneInfo(grant.patient.time_zone)):
        return render(request, "portal/appointments/book_confirm.html", context)


def _confirm_url(kind: AppointmentType, row: SlotRow) -> str:
    query = urlencode(
        {
            "type": kind.code,
            "provider": str(row.slot.provider_id),
            "location": str(row.slot.location_id),
            "start": row.key,
        }
    )
    return f"{reverse('portal:book_confirm')}?{query}"
