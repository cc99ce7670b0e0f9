"""Pages for the waitlist and EHR conflicts.

- `claim`: the public page behind a waitlist offer's link (`/w/<code>`). It shows the
  offered time and one button; only the POST claims (mail scanners open links with
  GET). An unknown code is refused (403), an expired offer says so (410), a slot taken
  by someone else says so (409); none of them changes anything. It speaks the
  patient's language (or `?lang=`).
- Staff: the waitlist per provider and type with each entry's state; an entry's page
  lists free slots in its range, to offer one out of turn or book it directly, and
  removes the entry. Staff add a patient to the waitlist (found by a POSTed search, or
  from the patient's page) through the same service the portal uses. Open conflicts
  with the EHR, and their resolution.
"""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods, require_safe

from careloop.core.clock import now
from careloop.core.web import staff_page
from careloop.outreach.links import portal_url
from careloop.patients.models import Patient
from careloop.patients.selectors import patient_get, patient_search
from careloop.scheduling.booking import RoleMayNotBook, SlotUnavailable
from careloop.scheduling.conflicts import (
    RESOLUTIONS,
    ConflictInvalid,
    conflict_resolve,
    conflicts_open,
)
from careloop.scheduling.models import (
    AppointmentConflict,
    AppointmentType,
    Location,
    OfferStatus,
    Provider,
    TimeOfDay,
    WaitlistEntry,
    WaitlistStatus,
)
from careloop.scheduling.slots import slots_search
from careloop.scheduling.waitlist import (
    ClaimOutcome,
    WaitlistInvalid,
    waitlist_book,
    waitlist_claim,
    waitlist_entries,
    waitlist_offer_open,
    waitlist_offer_to,
    waitlist_remove,
    waitlist_request,
)
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Op, Resource
from careloop.security.scope import patient_scope

LANGUAGES = ("en", "es")
STATUS_FOR = {
    ClaimOutcome.BOOKED: 200,
    ClaimOutcome.ALREADY: 200,
    ClaimOutcome.GONE: 409,
    ClaimOutcome.EXPIRED: 410,
    ClaimOutcome.INVALID: 403,
}
SLOTS_SHOWN = 12
PAGE_LIMIT = 200


# --- the public claim page ----------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def claim(request: HttpRequest, code: str) -> HttpResponse:
    offer = waitlist_offer_open(code)
    if offer is None:
        return _claim_page(request, _language(request, ""), {"outcome": ClaimOutcome.INVALID})
    language = _language(request, offer.entry.patient.preferred_language)
    context: dict[str, Any] = {"offer": offer}
    if request.method == "POST":
        result = waitlist_claim(code=code)
        context |= {"outcome": result.outcome, "offer": result.offer or offer}
    elif offer.status == OfferStatus.CLAIMED:
        context["outcome"] = ClaimOutcome.ALREADY
    elif offer.status in (OfferStatus.GONE, OfferStatus.WITHDRAWN):
        context["outcome"] = ClaimOutcome.GONE
    elif offer.status == OfferStatus.EXPIRED or offer.expires_at <= now():
        context["outcome"] = ClaimOutcome.EXPIRED
    return _claim_page(request, language, context)


# The random code is the credential (permissions.SIGNED_ROUTES): an unknown one is 403.
claim.careloop_signed_webhook = True  # type: ignore[attr-defined]


def _language(request: HttpRequest, preferred: str) -> str:
    asked = request.GET.get("lang", "")
    if asked in LANGUAGES:
        return asked
    primary = (preferred or "en").split("-")[0].lower()
    return primary if primary in LANGUAGES else "en"


def _claim_page(request: HttpRequest, language: str, context: dict[str, Any]) -> HttpResponse:
    outcome = context.get("outcome")
    offer = context.get("offer")
    local = None
    if offer is not None:
        local = offer.start.astimezone(_zone(offer.location))
    with translation.override(language):
        response = render(
            request,
            "scheduling/waitlist_claim.html",
            {
                **context,
                "local_start": local,
                "practice_name": settings.PRACTICE_NAME,
                "practice_phone": settings.PRACTICE_PHONE,
                "portal_url": portal_url(),
            },
            status=STATUS_FOR.get(outcome, 200) if outcome else 200,
        )
    response.headers["Content-Language"] = language
    response.headers["Cache-Control"] = "no-store"
    return response


def _zone(location: Location) -> datetime.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(location.time_zone)


# --- staff: the waitlist ------------------------------------------------------------------


def _staff(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101 - staff_page let a signed-in user in
    return user


def _visible_entries(user: User) -> QuerySet[WaitlistEntry]:
    return WaitlistEntry.objects.filter(
        patient__in=Patient.objects.filter(patient_scope(user)).values("pk")
    )


@require_safe
@staff_page(Op.READ, Resource.APPOINTMENTS)
def waitlist_list(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    show = request.GET.get("show", "waiting")
    entries = _visible_entries(user).select_related("patient", "provider", "appointment_type")
    if show != "all":
        entries = entries.filter(status=WaitlistStatus.WAITING)
    entries = entries.annotate(
        open_offers=Count("offers", filter=Q(offers__status=OfferStatus.OPEN))
    ).order_by("provider__display_name", "appointment_type__name", "requested_at", "id")
    rows = list(entries[:PAGE_LIMIT])
    groups: dict[tuple[str, str], list[WaitlistEntry]] = defaultdict(list)
    for entry in rows:
        provider = entry.provider.display_name if entry.provider else "Any provider"
        groups[(provider, entry.appointment_type.name)].append(entry)
    audit_record(
        action="waitlist.view",
        request=request,
        resource_type="waitlist_entry",
        fields=("patient", "status", "earliest", "latest"),
    )
    return render(
        request,
        "scheduling/waitlist_list.html",
        {"groups": sorted(groups.items()), "show": show, "count": len(rows)},
    )


def _entry(user: User, entry_id: uuid.UUID) -> WaitlistEntry:
    entry = (
        _visible_entries(user)
        .select_related("patient", "provider", "appointment_type")
        .filter(pk=entry_id)
        .first()
    )
    if entry is None:
        raise Http404("no such waitlist entry")
    return entry


@require_http_methods(["GET", "POST"])
@staff_page(Op.WRITE, Resource.APPOINTMENTS)
def waitlist_entry(request: HttpRequest, entry_id: uuid.UUID) -> HttpResponse:
    user = _staff(request)
    entry = _entry(user, entry_id)
    if request.method == "POST":
        _entry_action(request, user, entry)
        return redirect("waitlist:entry", entry_id=entry.pk)
    audit_record(
        action="waitlist.view",
        request=request,
        patient_id=entry.patient_id,
        resource_type="waitlist_entry",
        resource_id=str(entry.pk),
        fields=("patient", "status", "earliest", "latest"),
    )
    slots = []
    if entry.status == WaitlistStatus.WAITING:
        found = slots_search(
            appointment_type=entry.appointment_type,
            providers=[entry.provider] if entry.provider else None,
            start_date=max(entry.earliest, now().date()),
            end_date=entry.latest,
        )
        slots = found[:SLOTS_SHOWN]
    providers = {p.pk: p for p in Provider.objects.filter(pk__in={s.provider_id for s in slots})}
    locations = {
        place.pk: place for place in Location.objects.filter(pk__in={s.location_id for s in slots})
    }
    choices = [
        {
            "value": f"{s.provider_id}|{s.location_id}|{s.start.isoformat()}",
            "provider": providers[s.provider_id],
            "location": locations[s.location_id],
            "local": s.start.astimezone(_zone(locations[s.location_id])),
        }
        for s in slots
    ]
    offers = entry.offers.select_related("provider").order_by("-created_at")[:20]
    return render(
        request,
        "scheduling/waitlist_entry.html",
        {"entry": entry, "slots": choices, "offers": offers},
    )


def _entry_action(request: HttpRequest, user: User, entry: WaitlistEntry) -> None:
    action = request.POST.get("action", "")
    try:
        if action == "remove":
            waitlist_remove(actor=user, entry=entry)
            messages.success(request, "Removed from the waitlist.")
            return
        if action not in ("offer", "book"):
            messages.error(request, "Choose an action.")
            return
        if entry.status != WaitlistStatus.WAITING:
            messages.error(request, "This entry is no longer waiting.")
            return
        provider, location, start = _slot_from(request.POST.get("slot", ""))
        if action == "offer":
            waitlist_offer_to(
                actor=user, entry=entry, provider=provider, location=location, start=start
            )
            messages.success(request, "Offer sent.")
        else:
            waitlist_book(
                actor=user, entry=entry, provider=provider, location=location, start=start
            )
            messages.success(request, "Booked.")
    except (WaitlistInvalid, SlotUnavailable) as refused:
        messages.error(request, str(refused).capitalize())
    except RoleMayNotBook as refused:
        messages.error(request, f"{refused}.")


def _slot_from(value: str) -> tuple[Provider, Location, datetime.datetime]:
    try:
        provider_id, location_id, start_text = value.split("|")
        provider = Provider.objects.get(pk=uuid.UUID(provider_id))
        location = Location.objects.get(pk=uuid.UUID(location_id))
    except (ValueError, Provider.DoesNotExist, Location.DoesNotExist):
        raise WaitlistInvalid("Choose one of the free times.") from None
    start = parse_datetime(start_text)
    if start is None or start.tzinfo is None:
        raise WaitlistInvalid("Choose one of the free times.")
    return provider, location, start


# --- staff: adding a patient to the waitlist ----------------------------------------------

# The range a new entry gets unless staff change it.
DEFAULT_RANGE_DAYS = 30


class WaitlistAddForm(forms.Form):
    appointment_type = forms.ModelChoiceField(
        queryset=AppointmentType.objects.all(), label="Appointment type", empty_label=None
    )
    provider = forms.ModelChoiceField(
        queryset=Provider.objects.filter(active=True),
        label="Provider",
        required=False,
        empty_label="Any provider",
    )
    earliest = forms.DateField(label="From", widget=forms.DateInput({"type": "date"}))
    latest = forms.DateField(label="To", widget=forms.DateInput({"type": "date"}))
    time_of_day = forms.ChoiceField(
        label="Time of day", choices=TimeOfDay.choices, initial=TimeOfDay.ANY
    )


def _add_initial() -> dict[str, Any]:
    today = now().date()
    return {
        "earliest": today,
        "latest": today + datetime.timedelta(days=DEFAULT_RANGE_DAYS),
        "appointment_type": AppointmentType.objects.first(),
    }


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.APPOINTMENTS)
def waitlist_add(request: HttpRequest) -> HttpResponse:
    """Find the patient to add. The search is POSTed, as on the patient list, so that
    names never sit in a URL; each patient found links to the form for them."""
    user = _staff(request)
    query = request.POST.get("q", "").strip() if request.method == "POST" else ""
    page = patient_search(actor=user, query=query) if query else None
    return render(request, "scheduling/waitlist_add.html", {"page": page, "query": query})


@require_http_methods(["GET", "HEAD", "POST"])
@staff_page(Op.WRITE, Resource.APPOINTMENTS)
def waitlist_add_for(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    """GET: the form for the patient (their entries already waiting shown beside it);
    POST: add them through `waitlist_request`, as the portal does, or show why not."""
    user = _staff(request)
    patient = patient_get(actor=user, patient_id=patient_id)
    audit_record(
        action="patient.view",
        request=request,
        patient_id=patient.pk,
        resource_type="Patient",
        resource_id=str(patient.pk),
        fields=("name",),
    )
    form = WaitlistAddForm(
        request.POST if request.method == "POST" else None, initial=_add_initial()
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            entry = waitlist_request(
                actor=user,
                patient=patient,
                appointment_type=data["appointment_type"],
                provider=data["provider"],
                earliest=data["earliest"],
                latest=data["latest"],
                time_of_day=data["time_of_day"],
            )
        except WaitlistInvalid as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(request, "Added to the waitlist.")
            return redirect("waitlist:entry", entry_id=entry.pk)
    return render(
        request,
        "scheduling/waitlist_add.html",
        {"patient": patient, "form": form, "waiting": waitlist_entries(patient=patient)},
    )


# --- staff: conflicts with the EHR ----------------------------------------------------------


@require_safe
@staff_page(Op.READ, Resource.APPOINTMENTS)
def conflict_list(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    visible = set(Patient.objects.filter(patient_scope(user)).values_list("pk", flat=True))
    rows = [c for c in conflicts_open(actor=user) if c.appointment.patient_id in visible]
    audit_record(
        action="patient.list",
        request=request,
        resource_type="appointment_conflict",
        fields=("patient", "start", "provider"),
    )
    return render(
        request,
        "scheduling/conflicts.html",
        {"conflicts": rows[:PAGE_LIMIT], "resolutions": RESOLUTIONS},
    )


@require_http_methods(["POST"])
@staff_page(Op.WRITE, Resource.APPOINTMENTS)
def conflict_settle(request: HttpRequest, conflict_id: uuid.UUID) -> HttpResponse:
    user = _staff(request)
    conflict = (
        AppointmentConflict.objects.select_related("appointment", "other")
        .filter(
            pk=conflict_id,
            appointment__patient__in=Patient.objects.filter(patient_scope(user)).values("pk"),
        )
        .first()
    )
    if conflict is None:
        raise Http404("no such conflict")
    try:
        conflict_resolve(actor=user, conflict=conflict, action=request.POST.get("action", ""))
        messages.success(request, "Conflict resolved.")
    except ConflictInvalid as refused:
        messages.error(request, str(refused))
    return redirect("waitlist:conflicts")
