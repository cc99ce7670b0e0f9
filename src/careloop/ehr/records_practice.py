"""Record handlers for the practice's side: Practitioner, PractitionerRole, Organization,
Location and Appointment (US Core R4 in, careloop scheduling rows out).

A careloop provider needs a location. A Practitioner arrives without one, so each
source has a default location, "<source> (EHR)", in the practice's time zone; a
PractitionerRole that names a Location moves the provider there. Appointments need a
provider: one whose practitioner careloop does not know (not imported yet, or without
an NPI) is rejected to the quarantine, to be re-processed once it is.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.utils.text import slugify

from careloop.core.clock import now
from careloop.ehr import fhir_values as fv
from careloop.ehr.handlers import (
    RecordContext,
    RecordResult,
    Reject,
    WaitForPatient,
    record_handler,
    subject_id,
)
from careloop.ehr.identity import state_code
from careloop.ehr.models import Source
from careloop.ehr.records_patients import live_patient
from careloop.patients.address import AddressError, time_zone_for
from careloop.patients.models import TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.scheduling.conflicts import conflict_guard_ehr_change, conflicts_detect
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
)

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
DEFAULT_VISIT_MINUTES = 30


def ehr_location(source: Source) -> Location:
    """The location a source's providers belong to until a PractitionerRole says where."""
    location, _ = Location.objects.get_or_create(
        name=f"{source.name} (EHR)"[:120], defaults={"time_zone": settings.PRACTICE_TIME_ZONE}
    )
    return location


# --- Organization and Location ----------------------------------------------------------


@record_handler("Organization")
def organization_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    """Remembered only: careloop has no organisation table; payers and referral
    partners carry their names where they are used."""
    return RecordResult(None)


def _location_values(resource: dict[str, Any]) -> dict[str, str]:
    address = resource.get("address") if isinstance(resource.get("address"), dict) else {}
    assert isinstance(address, dict)  # noqa: S101 - narrowed above
    state = state_code(fv.text(address.get("state")))
    postal = fv.text(address.get("postalCode"))
    line = " ".join(fv.text(x) for x in address.get("line") or [] if fv.text(x))
    where = ", ".join(
        filter(None, [line, fv.text(address.get("city")), f"{state} {postal}".strip()])
    )
    try:
        zone = time_zone_for(state=state, postal_code=postal) if state else ""
    except AddressError:
        zone = ""
    phone = next(
        (
            fv.text(t.get("value"))
            for t in fv.items(resource, "telecom")
            if t.get("system") == "phone"
        ),
        "",
    )
    return {
        "time_zone": zone or settings.PRACTICE_TIME_ZONE,
        "address": where[:200],
        "phone": phone[:32],
    }


@record_handler("Location")
def location_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    """A place of care. One already known under the same name is the same place."""
    name = fv.text(resource.get("name"))[:120]
    if not name:
        raise Reject("Location: name missing")
    values = _location_values(resource)
    location = Location.objects.filter(pk=target_id).first() if target_id else None
    if location is None:
        location = Location.objects.filter(name=name).first()
    if location is None:
        location = Location.objects.create(name=name, **values)
        return RecordResult(location.pk)
    # A rename onto a name another location holds keeps the old name (names are unique).
    if location.name != name and not Location.objects.filter(name=name).exists():
        values["name"] = name
    changed = [key for key, value in values.items() if getattr(location, key) != value]
    if changed:
        for key in changed:
            setattr(location, key, values[key])
        location.save(update_fields=changed)
    return RecordResult(location.pk, changed=bool(changed))


# --- Practitioner and PractitionerRole --------------------------------------------------


def _npi(resource: dict[str, Any]) -> str:
    for ident in fv.items(resource, "identifier"):
        value = fv.text(ident.get("value"))
        if ident.get("system") == NPI_SYSTEM and len(value) == 10 and value.isdigit():
            return value
    return ""


def _display_name(resource: dict[str, Any], npi: str) -> str:
    name = fv.human_name(resource)
    if name is None:
        return f"Provider {npi}"
    given, family = fv.given_and_family(name)
    prefix = " ".join(fv.text(p) for p in name.get("prefix") or [] if fv.text(p))
    suffix = ", ".join(fv.text(s) for s in name.get("suffix") or [] if fv.text(s))
    shown = " ".join(filter(None, [prefix, given, family])) or fv.text(name.get("text"))
    return (f"{shown}, {suffix}" if suffix else shown or f"Provider {npi}")[:120]


@record_handler("Practitioner")
def practitioner_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    """A provider, known by NPI (a provider careloop already has with that NPI is the
    same one). A practitioner without an NPI is remembered only."""
    npi = _npi(resource)
    if not npi:
        return RecordResult(None)
    values = {
        "display_name": _display_name(resource, npi),
        "active": resource.get("active") is not False,
    }
    provider = Provider.objects.filter(pk=target_id).first() if target_id else None
    if provider is None:
        provider = Provider.objects.filter(npi=npi).first()
    if provider is None:
        provider = Provider.objects.create(
            npi=npi, specialty="", location=ehr_location(ctx.source), **values
        )
        return RecordResult(provider.pk)
    if provider.npi != npi and not Provider.objects.filter(npi=npi).exists():
        values["npi"] = npi
    return _save(provider, values)


def _save(provider: Provider, values: dict[str, Any]) -> RecordResult:
    changed = [key for key, value in values.items() if getattr(provider, key) != value]
    if changed:
        for key in changed:
            setattr(provider, key, values[key])
        provider.save(update_fields=[k if k != "location_id" else "location" for k in changed])
    return RecordResult(provider.pk, changed=bool(changed))


@record_handler("PractitionerRole")
def practitioner_role_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    """Where a provider works and in what specialty; the provider is the row it changes."""
    practitioner = fv.reference_id(resource.get("practitioner"), "Practitioner")
    if practitioner is None:
        raise Reject("PractitionerRole: practitioner missing")
    provider_id = ctx.target_for("Practitioner", practitioner)
    provider = Provider.objects.filter(pk=provider_id).first() if provider_id else None
    if provider is None:
        raise Reject(
            "PractitionerRole: practitioner is not a careloop provider "
            "(not yet imported, or no NPI)"
        )
    values: dict[str, Any] = {}
    for ref in fv.items(resource, "location"):
        location_source_id = fv.reference_id(ref, "Location")
        location_id = ctx.target_for("Location", location_source_id) if location_source_id else None
        if location_id is not None:
            values["location_id"] = location_id
            break
    specialty = fv.concept_text(resource.get("specialty"))[:80]
    if specialty:
        values["specialty"] = specialty
    return _save(provider, values)


# --- Appointment ------------------------------------------------------------------------

APPOINTMENT_STATUSES = {
    "booked": AppointmentStatus.BOOKED,
    "arrived": AppointmentStatus.CHECKED_IN,
    "checked-in": AppointmentStatus.CHECKED_IN,
    "fulfilled": AppointmentStatus.FULFILLED,
    "cancelled": AppointmentStatus.CANCELLED,
    "noshow": AppointmentStatus.NO_SHOW,
    "entered-in-error": AppointmentStatus.CANCELLED,
}


def participant(resource: dict[str, Any], resource_type: str) -> str | None:
    for participant in fv.items(resource, "participant"):
        if resource_type == "Patient":
            found = subject_id(participant, "actor")
        else:
            found = fv.reference_id(participant.get("actor"), resource_type)
            if fv.reference_type(participant.get("actor")) != resource_type:
                found = None
        if found:
            return found
    return None


def appointment_type(resource: dict[str, Any]) -> AppointmentType:
    """The careloop type for the appointment's type (or service type): one of careloop's
    own when its code is the same, else an `ehr-<code>` type made on first sight."""
    minutes = resource.get("minutesDuration")
    minutes = minutes if isinstance(minutes, int) and minutes > 0 else DEFAULT_VISIT_MINUTES
    for concept in (resource.get("appointmentType"), resource.get("serviceType")):
        for _, code, display in fv.codings(concept):
            slug = slugify(code)[:36]
            if not slug:
                continue
            own = AppointmentType.objects.filter(pk=slug).first()
            if own is not None:
                return own
            made, _ = AppointmentType.objects.get_or_create(
                code=f"ehr-{slug}", defaults={"name": (display or code)[:80], "minutes": minutes}
            )
            return made
    made, _ = AppointmentType.objects.get_or_create(
        code="ehr-visit",
        defaults={"name": "Visit (from the EHR)", "minutes": DEFAULT_VISIT_MINUTES},
    )
    return made


@record_handler("Appointment")
def appointment_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    status = APPOINTMENT_STATUSES.get(fv.text(resource.get("status")))
    held = Appointment.objects.filter(pk=target_id).first() if target_id else None
    source_patient = participant(resource, "Patient")
    if source_patient is None:
        raise Reject("Appointment: no patient participant")
    patient_id = ctx.patient_for(source_patient)
    if patient_id is None:
        raise WaitForPatient(source_patient)
    patient = live_patient(patient_id)
    if status is None or (held is None and resource.get("status") == "entered-in-error"):
        # Proposed, pending or waitlisted: not on anyone's schedule yet.
        return RecordResult(held.pk if held else None, patient.pk, changed=False)
    values = _appointment_values(ctx, resource, status)
    values["patient_id"] = patient.pk
    if held is not None and all(getattr(held, k) == v for k, v in values.items()):
        return RecordResult(held.pk, patient.pk, changed=False)
    if held is not None and conflict_guard_ehr_change(appointment=held, values=values):
        return RecordResult(held.pk, patient.pk, changed=False)
    if held is None:
        held = Appointment.objects.create(source="ehr", created_at=now(), **values)
        summary = f"Appointment from the EHR: {AppointmentStatus(status).label.lower()}"
    else:
        previous = held.status
        for key, value in values.items():
            setattr(held, key, value)
        held.save(update_fields=[k.removesuffix("_id") for k in values])
        summary = (
            f"Appointment {AppointmentStatus(status).label.lower()} (EHR)"
            if previous != status
            else "Appointment changed (EHR)"
        )
    timeline_add(
        patient=patient,
        kind=TimelineKind.APPOINTMENT,
        summary=summary,
        ref_type="appointment",
        ref_id=str(held.pk),
    )
    conflicts_detect(appointment_ids=[held.pk])
    return RecordResult(held.pk, patient.pk)


def _appointment_values(
    ctx: RecordContext, resource: dict[str, Any], status: AppointmentStatus
) -> dict[str, Any]:
    start = fv.instant(resource.get("start"))
    if start is None:
        raise Reject("Appointment: start missing")
    practitioner = participant(resource, "Practitioner")
    provider_id = ctx.target_for("Practitioner", practitioner) if practitioner else None
    provider = Provider.objects.filter(pk=provider_id).first() if provider_id else None
    if provider is None:
        raise Reject(
            "Appointment: practitioner is not a careloop provider (not yet imported, or no NPI)"
        )
    location_source = participant(resource, "Location")
    location_id = ctx.target_for("Location", location_source) if location_source else None
    kind = appointment_type(resource)
    end = fv.instant(resource.get("end")) or start + datetime.timedelta(minutes=kind.minutes)
    if end <= start:
        raise Reject("Appointment: end is not after start")
    return {
        "provider_id": provider.pk,
        "location_id": location_id or provider.location_id,
        "appointment_type_id": kind.pk,
        "start": start,
        "end": end,
        "status": status,
    }
