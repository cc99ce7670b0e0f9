"""SIU (scheduling) messages as careloop appointments.

S12 new, S13 rescheduled, S14 modified, S15 cancelled, S17 deleted, S26 no-show. Each
message carries the whole appointment (SCH, PID, AIS, AIP, AIL), so every event is an
upsert keyed on the sender's appointment id (SCH-2, else SCH-1), remembered as a
`SourceRecord` of type Appointment; the event then sets the status. A deleted
appointment is kept as cancelled, since reminders may already have named it.

Providers, locations and appointment types the practice directory does not know are
created once per source as placeholders (remembered as SourceRecords too, so the next
message finds them) for staff to complete; a provider is found by NPI first.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid

from django.conf import settings
from django.utils.text import slugify

from careloop.core.clock import now
from careloop.ehr.hl7 import Composite, Hl7Error, Message, Segment, hl7_datetime
from careloop.ehr.hl7_pid import patient_from_pid
from careloop.ehr.identity import patient_upsert
from careloop.ehr.models import Source, SourceRecord
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.scheduling.conflicts import conflict_guard_ehr_change, conflicts_detect
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
)

SIU_EVENTS = frozenset({"S12", "S13", "S14", "S15", "S17", "S26"})
STATUS_FOR_EVENT = {
    "S15": AppointmentStatus.CANCELLED,
    "S17": AppointmentStatus.CANCELLED,
    "S26": AppointmentStatus.NO_SHOW,
}
TIMELINE_WORDS = {
    "S12": "booked",
    "S13": "rescheduled",
    "S14": "changed",
    "S15": "cancelled",
    "S17": "deleted",
    "S26": "marked no-show",
}
DEFAULT_MINUTES = 30
# Duration units (SCH-10, AIS-8) in minutes; anything else is read as minutes.
UNIT_MINUTES = {"s": 1 / 60, "sec": 1 / 60, "min": 1, "m": 1, "h": 60, "hr": 60, "hour": 60}


def siu_apply(source: Source, message: Message) -> uuid.UUID:
    event = message.message_type.split("^")[1]
    sch = message.require("SCH")
    appointment_id = _appointment_id(sch)
    source_id, incoming = patient_from_pid(message.require("PID"), source=source)
    patient_id = patient_upsert(
        source=source, source_patient_id=source_id, incoming=incoming
    ).patient_id
    start, minutes, kind = _when(message, source=source)
    location = _location(message, source=source)
    values = {
        "patient_id": patient_id,
        "provider": _provider(message, source=source, location=location),
        "location": location,
        "appointment_type": kind,
        "start": start,
        "end": start + datetime.timedelta(minutes=minutes),
    }
    known = _known(source, "Appointment", appointment_id)
    appointment = Appointment.objects.filter(pk=known).first() if known else None
    status = STATUS_FOR_EVENT.get(event)
    if appointment is None:
        appointment = Appointment(
            source="ehr", created_at=now(), status=status or AppointmentStatus.BOOKED, **values
        )
        appointment.save(force_insert=True)
    elif not conflict_guard_ehr_change(
        appointment=appointment, values={**values, "status": status}
    ):
        for name, value in values.items():
            setattr(appointment, name, value)
        if status is not None or event in {"S12", "S13"}:
            appointment.status = status or AppointmentStatus.BOOKED
        appointment.save(update_fields=[*values, "status"])
    conflicts_detect(appointment_ids=[appointment.pk])
    _remember(source, "Appointment", appointment_id, appointment.pk, patient_id=patient_id)
    timeline_add(
        patient=Patient.objects.get(pk=patient_id),
        kind=TimelineKind.APPOINTMENT,
        summary=f"Appointment {TIMELINE_WORDS[event]}, reported by the EHR",
        ref_type="appointment",
        ref_id=str(appointment.pk),
    )
    return patient_id


def _appointment_id(sch: Segment) -> str:
    value = sch.get(2) or sch.get(1)
    if not value:
        raise Hl7Error("SCH-2 and SCH-1 (appointment ids) are empty", code=101, location="SCH-2")
    if len(value) > 64:
        raise Hl7Error("SCH-2 is longer than 64 characters", code=102, location="SCH-2")
    return value


def _when(message: Message, *, source: Source) -> tuple[datetime.datetime, int, AppointmentType]:
    """(start, minutes, type): AIS first (v2.4+ puts the timing there), then SCH-11."""
    sch, ais = message.require("SCH"), message.first("AIS")
    start = None
    for segment, number in ((ais, 4), (message.first("AIL"), 6), (message.first("AIP"), 6)):
        if segment is not None and start is None:
            start = hl7_datetime(segment.get(number), location=f"{segment.name}-{number}")
    start = start or hl7_datetime(sch.get(11, 4), location="SCH-11")
    if start is None:
        raise Hl7Error("no start time in AIS-4 or SCH-11", code=101, location="AIS-4")
    minutes = _minutes(ais.get(7), ais.get(8)) if ais is not None else None
    minutes = minutes or _minutes(sch.get(9), sch.get(10))
    end = hl7_datetime(sch.get(11, 5), location="SCH-11")
    if minutes is None and end is not None and end > start:
        minutes = int((end - start).total_seconds() // 60)
    service = ais.repeats(3)[0] if ais is not None and ais.repeats(3) else None
    service = service or next(iter(sch.repeats(8) or sch.repeats(7)), None)
    kind = _appointment_type(service, source=source, minutes=minutes)
    return start, max(1, minutes or kind.minutes), kind


def _minutes(amount: str, unit: str) -> int | None:
    try:
        value = float(amount)
    except ValueError:
        return None
    factor = UNIT_MINUTES.get(unit.split("^")[0].strip().lower(), 1)
    return int(round(value * factor)) or None


def _remember(
    source: Source,
    resource_type: str,
    resource_id: str,
    target_id: uuid.UUID,
    *,
    patient_id: uuid.UUID | None = None,
) -> None:
    at = now()
    digest = hashlib.blake2b(f"{target_id}".encode(), digest_size=8).digest()
    SourceRecord.objects.update_or_create(
        source=source,
        resource_type=resource_type,
        resource_id=resource_id,
        defaults={
            "target_id": target_id,
            "patient_id": patient_id,
            "content_hash": int.from_bytes(digest, "big", signed=True),
            "updated_at": at,
        },
        create_defaults={
            "target_id": target_id,
            "patient_id": patient_id,
            "content_hash": int.from_bytes(digest, "big", signed=True),
            "created_at": at,
            "updated_at": at,
        },
    )


def _known(source: Source, resource_type: str, resource_id: str) -> uuid.UUID | None:
    return (
        SourceRecord.objects.filter(
            source=source, resource_type=resource_type, resource_id=resource_id
        )
        .values_list("target_id", flat=True)
        .first()
    )


def _location(message: Message, *, source: Source) -> Location:
    """AIL-3 (a PL: point of care, room, bed, facility), else PV1-3."""
    ail, pv1 = message.first("AIL"), message.first("PV1")
    place = ail.repeats(3)[0] if ail is not None and ail.repeats(3) else None
    if place is None and pv1 is not None and pv1.repeats(3):
        place = pv1.repeats(3)[0]
    code = (place.get(1) or place.get(4)) if place is not None else ""
    key = code[:64] or "unspecified"
    found = _known(source, "Location", key)
    location = Location.objects.filter(pk=found).first() if found else None
    if location is None:
        label = code or "Unspecified location"
        location = Location.objects.create(
            name=f"{label} ({source.name})"[:120], time_zone=settings.PRACTICE_TIME_ZONE
        )
        _remember(source, "Location", key, location.pk)
    return location


def _provider(message: Message, *, source: Source, location: Location) -> Provider:
    """AIP-3 (an XCN): the practice's provider with that NPI, else this source's
    placeholder for that id (one "unassigned" placeholder when AIP is missing)."""
    aip = message.first("AIP")
    person = aip.repeats(3)[0] if aip is not None and aip.repeats(3) else None
    person_id = person.get(1)[:64] if person is not None else ""
    if person_id.isdigit() and len(person_id) == 10:
        by_npi = Provider.objects.filter(npi=person_id).first()
        if by_npi is not None:
            return by_npi
    key = person_id or "unassigned"
    found = _known(source, "Practitioner", key)
    provider = Provider.objects.filter(pk=found).first() if found else None
    if provider is None:
        provider = Provider.objects.create(
            display_name=_provider_name(person)[:120],
            # A placeholder has no NPI; "X" + 9 characters can never be a real one.
            npi=f"X{uuid.uuid4().hex[:9]}",
            specialty="",
            location=location,
        )
        _remember(source, "Practitioner", key, provider.pk)
    return provider


def _provider_name(person: Composite | None) -> str:
    if person is None:
        return "Unassigned provider"
    name = " ".join(filter(None, [person.get(6), person.get(3), person.get(2)]))
    return name or f"Provider {person.get(1)}"


def _appointment_type(
    service: Composite | None, *, source: Source, minutes: int | None
) -> AppointmentType:
    """The source's appointment type for AIS-3 / SCH-8 (one per source and code)."""
    code = (service.get(1) if service is not None else "") or "visit"
    slug = slugify(f"{source.name}-{code}")[:40] or "ehr-visit"
    label = (service.get(2) if service is not None else "") or code
    kind, _ = AppointmentType.objects.get_or_create(
        code=slug,
        defaults={"name": label[:80], "minutes": minutes or DEFAULT_MINUTES},
    )
    return kind
