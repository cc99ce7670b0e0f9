"""Fast paths for the record types that come in bulk: new patients, coverage, appointments.

A Bulk Data export carries several appointments per patient; made one at a time
through the ORM (a savepoint, lookups, three inserts each) they would cap an import
at a few hundred resources a second. For resources new to careloop, the pipeline
hands the whole batch here: references resolve from per-run caches, and the rows
(appointments, their timeline entries) go in with one bulk insert each. The mapping
itself is the record handler's (careloop.ehr.records_practice); an appointment that
careloop already holds goes through the handler as usual.

New patients: a patient that cannot be anyone careloop knows is written in bulk. That
is decided for the whole batch in two queries, conservatively: no identifier of it is
held by anyone, no living patient born the same day shares its family or given name
(or has them swapped), and no other patient in the batch shares any of those. Every
other patient goes through careloop.ehr.identity one by one, matching and review
queue included, exactly as it would without this path.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from django.db import transaction
from django.db.models import Q

from careloop.core.bulk import Rows, adapters, insert_objects
from careloop.core.clock import now
from careloop.ehr import fhir_values as fv
from careloop.ehr.handlers import (
    RECORD_HANDLERS,
    RecordContext,
    RecordResult,
    Reject,
    WaitForPatient,
    subject_id,
)
from careloop.ehr.identity import Clean, NewPatientRows, clean, new_patient_rows
from careloop.ehr.records_patients import coverage_summary, coverage_values, incoming_patient
from careloop.ehr.records_practice import APPOINTMENT_STATUSES, appointment_type, participant
from careloop.patients.lifecycle import lifecycle_recompute
from careloop.patients.models import (
    ContactPoint,
    Coverage,
    Patient,
    PatientIdentifier,
    TimelineEvent,
    TimelineKind,
)
from careloop.scheduling.conflicts import conflicts_detect
from careloop.scheduling.models import Appointment, AppointmentStatus, Provider
from careloop.security.fields import blind_value

Outcome = RecordResult | Reject | WaitForPatient
BulkCreator = Callable[[RecordContext, Sequence[dict[str, Any]]], list[Outcome]]


class RunCache:
    """Lookups that stay true for the length of one import run."""

    def __init__(self) -> None:
        self.provider_location: dict[uuid.UUID, uuid.UUID | None] = {}
        self.appointment_types: dict[bytes, tuple[str, int]] = {}

    def location_of(self, provider_id: uuid.UUID) -> uuid.UUID | None:
        if provider_id not in self.provider_location:
            self.provider_location[provider_id] = (
                Provider.objects.filter(pk=provider_id)
                .values_list("location_id", flat=True)
                .first()
            )
        return self.provider_location[provider_id]

    def appointment_type(self, resource: dict[str, Any]) -> tuple[str, int]:
        key = orjson.dumps(
            [
                resource.get("appointmentType"),
                resource.get("serviceType"),
                resource.get("minutesDuration"),
            ]
        )
        found = self.appointment_types.get(key)
        if found is None:
            kind = appointment_type(resource)
            found = self.appointment_types[key] = (kind.pk, kind.minutes)
        return found


APPOINTMENT_FIELDS = (
    "id",
    "patient",
    "provider",
    "location",
    "appointment_type",
    "start",
    "end",
    "status",
    "source",
    "created_at",
)
TIMELINE_FIELDS = ("id", "patient", "at", "kind", "summary", "ref_type", "ref_id")


def appointments_new(
    ctx: RecordContext, resources: Sequence[dict[str, Any]], cache: RunCache
) -> list[Outcome]:
    """Create the appointments in `resources` (none of them held by careloop yet)."""
    a = adapters()
    outcomes: list[Outcome] = []
    rows = Rows(Appointment, APPOINTMENT_FIELDS)
    timeline = Rows(TimelineEvent, TIMELINE_FIELDS)
    stamp = now()
    at = a.dt(stamp)
    labels = {
        status: f"Appointment from the EHR: {status.label.lower()}" for status in AppointmentStatus
    }
    for resource in resources:
        try:
            outcome = _appointment(ctx, resource, cache)
        except (Reject, WaitForPatient) as refused:
            outcomes.append(refused)
            continue
        if isinstance(outcome, RecordResult):
            outcomes.append(outcome)
            continue
        appointment_id = uuid.uuid4()
        patient_id, provider_id, location_id, type_code, start, end, status = outcome
        patient = a.uid(patient_id)
        rows.add(
            (
                a.uid(appointment_id),
                patient,
                a.uid(provider_id),
                a.uid(location_id),
                type_code,
                a.dt(start),
                a.dt(end),
                status,
                "ehr",
                at,
            )
        )
        timeline.add(
            (
                a.uid(uuid.uuid4()),
                patient,
                at,
                TimelineKind.APPOINTMENT,
                labels[status],
                "appointment",
                str(appointment_id),
            )
        )
        outcomes.append(RecordResult(appointment_id, patient_id))
    rows.insert()
    timeline.insert()
    conflicts_detect(
        appointment_ids=[
            o.target_id
            for o in outcomes
            if isinstance(o, RecordResult) and o.changed and o.target_id is not None
        ]
    )
    return outcomes


AppointmentValues = tuple[
    uuid.UUID, uuid.UUID, uuid.UUID, str, datetime.datetime, datetime.datetime, AppointmentStatus
]


def _appointment(
    ctx: RecordContext, resource: dict[str, Any], cache: RunCache
) -> AppointmentValues | RecordResult:
    source_patient = participant(resource, "Patient")
    if source_patient is None:
        raise Reject("Appointment: no patient participant")
    patient_id = ctx.patient_for(source_patient)
    if patient_id is None:
        raise WaitForPatient(source_patient)
    status = APPOINTMENT_STATUSES.get(fv.text(resource.get("status")))
    if status is None or resource.get("status") == "entered-in-error":
        # Proposed, pending or waitlisted: not on anyone's schedule yet.
        return RecordResult(None, patient_id, changed=False)
    start = fv.instant(resource.get("start"))
    if start is None:
        raise Reject("Appointment: start missing")
    practitioner = participant(resource, "Practitioner")
    provider_id = ctx.target_for("Practitioner", practitioner) if practitioner else None
    provider_location = cache.location_of(provider_id) if provider_id else None
    if provider_id is None or provider_location is None:
        raise Reject(
            "Appointment: practitioner is not a careloop provider (not yet imported, or no NPI)"
        )
    location_source = participant(resource, "Location")
    location_id = ctx.target_for("Location", location_source) if location_source else None
    type_code, minutes = cache.appointment_type(resource)
    end = fv.instant(resource.get("end")) or start + datetime.timedelta(minutes=minutes)
    if end <= start:
        raise Reject("Appointment: end is not after start")
    return (
        patient_id,
        provider_id,
        location_id or provider_location,
        type_code,
        start,
        end,
        AppointmentStatus(status),
    )


def _name_keys(data: Clean) -> tuple[bytes | None, bytes | None]:
    return blind_value("name", data.family_name), blind_value("name", data.given_name)


def _possible_matches(
    parsed: Sequence[tuple[int, Clean]],
) -> tuple[set[bytes], set[tuple[datetime.date, bytes]]]:
    """Identifier indexes held by anyone, and (birth date, name index) of living patients
    whose family or given name is one of the batch's names, born on one of its days."""
    indexes = [i.index for _, data in parsed for i in data.identifiers]
    held: set[bytes] = set()
    for start in range(0, len(indexes), 5000):
        held.update(
            bytes(v)
            for v in PatientIdentifier.objects.filter(
                value_bidx__in=indexes[start : start + 5000]
            ).values_list("value_bidx", flat=True)
        )
    names = {key for _, data in parsed for key in _name_keys(data) if key is not None}
    days = {data.birth_date for _, data in parsed}
    born: set[tuple[datetime.date, bytes]] = set()
    if names:
        rows = (
            Patient.objects.filter(birth_date__in=days, merged_into__isnull=True)
            .filter(Q(family_name_bidx__in=names) | Q(given_name_bidx__in=names))
            .values_list("birth_date", "family_name_bidx", "given_name_bidx")
        )
        for day, family, given in rows:
            for key in (family, given):
                if key is not None:
                    born.add((day, bytes(key)))
    return held, born


def patients_new(
    ctx: RecordContext, resources: Sequence[dict[str, Any]], cache: RunCache
) -> list[Outcome]:
    """Create the patients in `resources` (all new to this source)."""
    outcomes: list[Outcome | None] = [None] * len(resources)
    parsed: list[tuple[int, Clean]] = []
    for number, resource in enumerate(resources):
        try:
            parsed.append((number, clean(incoming_patient(resource))))
        except Reject as rejected:
            outcomes[number] = rejected
    held, born = _possible_matches(parsed)
    seen: set[tuple[datetime.date, bytes] | bytes] = set()
    clear: list[tuple[int, Clean]] = []
    careful: list[int] = []
    for number, data in parsed:
        keys: set[tuple[datetime.date, bytes] | bytes] = {i.index for i in data.identifiers}
        keys |= {(data.birth_date, key) for key in _name_keys(data) if key is not None}
        if keys & seen or keys & held or keys & born:
            careful.append(number)
        else:
            clear.append((number, data))
        seen |= keys
    stamp = now()
    made: list[tuple[int, NewPatientRows, Clean]] = [
        (number, new_patient_rows(ctx.source, data, taken=frozenset(), at=stamp), data)
        for number, data in clear
    ]
    insert_objects(Patient, [rows.patient for _, rows, _ in made])
    insert_objects(ContactPoint, [c for _, rows, _ in made for c in rows.contacts])
    insert_objects(PatientIdentifier, [i for _, rows, _ in made for i in rows.identifiers])
    insert_objects(TimelineEvent, [rows.timeline for _, rows, _ in made])
    for number, rows, data in made:
        if data.deceased_on is not None:
            lifecycle_recompute(patient=rows.patient, as_of=stamp)
        outcomes[number] = RecordResult(rows.patient.pk, rows.patient.pk)
    handler = RECORD_HANDLERS["Patient"]
    for number in careful:
        try:
            with transaction.atomic():
                outcomes[number] = handler(ctx, resources[number], None)
        except Reject as rejected:
            outcomes[number] = rejected
    return [outcome for outcome in outcomes if outcome is not None]


def coverages_new(
    ctx: RecordContext, resources: Sequence[dict[str, Any]], cache: RunCache
) -> list[Outcome]:
    """Create the coverages in `resources` (none of them held by careloop yet)."""
    outcomes: list[Outcome] = []
    rows: list[Coverage] = []
    timeline: list[TimelineEvent] = []
    stamp = now()
    for resource in resources:
        try:
            source_patient = subject_id(resource, "beneficiary")
            if source_patient is None:
                raise Reject("Coverage: beneficiary missing")
            patient_id = ctx.patient_for(source_patient)
            if patient_id is None:
                raise WaitForPatient(source_patient)
            values = coverage_values(resource, patient_id)
        except (Reject, WaitForPatient) as refused:
            outcomes.append(refused)
            continue
        if values is None:
            outcomes.append(RecordResult(None, patient_id, changed=False))
            continue
        coverage = Coverage(id=uuid.uuid4(), **values)
        rows.append(coverage)
        timeline.append(
            TimelineEvent(
                patient_id=patient_id,
                at=stamp,
                kind=TimelineKind.PROFILE,
                summary=coverage_summary(coverage),
                ref_type="coverage",
                ref_id=str(coverage.pk),
            )
        )
        outcomes.append(RecordResult(coverage.pk, patient_id))
    insert_objects(Coverage, rows)
    insert_objects(TimelineEvent, timeline)
    return outcomes
