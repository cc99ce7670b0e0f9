"""Who an incoming patient is: one way for every feed (FHIR files, Bulk Data, HL7 ADT).

A feed turns its own record into an `IncomingPatient` and calls `patient_upsert`. The
source's own id for the patient is remembered (a `SourceRecord` of type Patient), so
later messages from that source land on the same careloop patient. A patient new to
the source is matched by identifier first, then by demographics with a conservative
rule; a match that is likely but not certain makes a new record and a `MatchReview`
for staff, never a silent merge.

The rule, for a patient the source has not sent before (careloop.ehr.matching):

- identifier (same system, same value) held by one patient with the same birth date:
  the same person;
- same birth date, same family name, same given name (or an initial of it), and a
  phone or e-mail they share: the same person;
- same birth date and family name with a given name that is the same or close but
  nothing to corroborate it, or a close name with a shared contact: likely, so a new
  record and a review;
- anything less: a new patient.

A patient the same source already sends under another id is never a candidate: the
source itself says they are two people (the eCQM test decks hold hundreds of distinct
patients with one MRN), and de-duplicating inside one EHR is that EHR's work (its
merge messages arrive as such).

The feed is not a staff member: rows are written here directly, with a timeline entry
for each created or changed patient, and no audit event per patient (the import writes
its run-level events).
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from careloop.core.clock import now
from careloop.core.practice import practice_today
from careloop.ehr.matching import Decision, held_elsewhere, match_new_patient
from careloop.ehr.models import MatchReview, Source, SourceRecord
from careloop.patients.address import AddressError, address_normalize, time_zone_for
from careloop.patients.lifecycle import lifecycle_recompute
from careloop.patients.models import (
    ContactPoint,
    ContactSystem,
    ContactUse,
    IdentifierKind,
    Patient,
    PatientIdentifier,
    Sex,
    TimelineEvent,
    TimelineKind,
)
from careloop.patients.timeline import timeline_add
from careloop.security import normalize
from careloop.security.fields import blind_value

PATIENT = "Patient"


@dataclass(frozen=True, slots=True)
class IncomingIdentifier:
    system: str
    value: str
    # "mrn" or "external" (careloop.patients.models.IdentifierKind)
    kind: str = "external"


@dataclass(frozen=True, slots=True)
class IncomingContact:
    system: str  # "phone" or "email"
    value: str
    use: str = "mobile"  # mobile, home, work


@dataclass(frozen=True, slots=True)
class IncomingPatient:
    """A patient as a feed describes it; values are raw (normalised by careloop)."""

    given_name: str
    family_name: str
    birth_date: datetime.date
    sex: str = "unknown"  # female, male, other, unknown
    identifiers: tuple[IncomingIdentifier, ...] = ()
    contacts: tuple[IncomingContact, ...] = ()
    address_line: str = ""
    city: str = ""
    state: str = ""  # a US state code ("MA") or its name ("Massachusetts")
    postal_code: str = ""
    preferred_language: str = ""  # BCP-47 ("en", "es", "en-US")
    deceased_on: datetime.date | None = None
    deceased: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class UpsertOutcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    # A new record was made and queued for review against a likely duplicate.
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class UpsertResult:
    patient_id: uuid.UUID
    outcome: UpsertOutcome


# --- normalising what the feed sent ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contact:
    system: str
    value: str  # E.164 or lower-case e-mail
    use: str
    index: bytes


@dataclass(frozen=True, slots=True)
class Identifier:
    system: str
    kind: str
    value: str
    index: bytes


@dataclass(frozen=True, slots=True)
class Place:
    line: str
    city: str
    state: str
    postal_code: str
    time_zone: str | None


@dataclass(frozen=True, slots=True)
class Clean:
    """The incoming patient in the form careloop stores (and compares) it."""

    given_name: str
    family_name: str
    birth_date: datetime.date
    sex: str
    identifiers: tuple[Identifier, ...]
    contacts: tuple[Contact, ...]
    place: Place | None
    language: str
    deceased_on: datetime.date | None


US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI",
    "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND",
    "ohio": "OH", "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA",
    "rhode island": "RI", "south carolina": "SC", "south dakota": "SD", "tennessee": "TN",
    "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA", "washington": "WA",
    "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY", "puerto rico": "PR",
    "guam": "GU", "virgin islands": "VI", "american samoa": "AS",
    "northern mariana islands": "MP",
}  # fmt: skip


def state_code(text: str) -> str:
    """ "MA" for "Massachusetts", "ma" or "MA"; "" for anything else."""
    cleaned = " ".join(text.split())
    if len(cleaned) == 2 and cleaned.isalpha():
        return cleaned.upper()
    return US_STATES.get(cleaned.casefold(), "")


def _place(incoming: IncomingPatient) -> Place | None:
    """The address in USPS form where it parses; as sent (trimmed) where it does not."""
    parts = (incoming.address_line, incoming.city, incoming.state, incoming.postal_code)
    if not any(part.strip() for part in parts):
        return None
    state = state_code(incoming.state)
    try:
        address = address_normalize(
            line=incoming.address_line,
            city=incoming.city,
            state=state,
            postal_code=incoming.postal_code,
        )
    except AddressError:
        zone = None
        if state:
            try:
                zone = time_zone_for(state=state, postal_code=incoming.postal_code)
            except AddressError:
                state = ""
        return Place(
            " ".join(incoming.address_line.split()),
            " ".join(incoming.city.split()),
            state,
            incoming.postal_code.strip(),
            zone,
        )
    zone = time_zone_for(state=address.state, postal_code=address.postal_code)
    return Place(address.line, address.city, address.state, address.postal_code, zone)


def _contacts(incoming: IncomingPatient) -> tuple[Contact, ...]:
    """Valid contact points, once each; one that does not normalise is left out."""
    found: dict[bytes, Contact] = {}
    for contact in incoming.contacts:
        try:
            if contact.system == ContactSystem.PHONE:
                value = normalize.phone(contact.value)
            elif contact.system == ContactSystem.EMAIL:
                value = normalize.email(contact.value)
            else:
                continue
        except normalize.NormalizationError:
            continue
        index = blind_value("contact", value)
        use = contact.use if contact.use in ContactUse.values else ContactUse.MOBILE
        if index is not None and index not in found:
            found[index] = Contact(contact.system, value, use, index)
    return tuple(found.values())


def _identifiers(incoming: IncomingPatient) -> tuple[Identifier, ...]:
    found: dict[tuple[str, bytes], Identifier] = {}
    for ident in incoming.identifiers:
        system = ident.system.strip()[:200]
        index = blind_value("identifier", ident.value)
        if not system or index is None:
            continue
        kind = ident.kind if ident.kind in IdentifierKind.values else IdentifierKind.EXTERNAL
        found.setdefault(
            (system, index), Identifier(system, kind, normalize.identifier(ident.value), index)
        )
    return tuple(found.values())


def _language(tag: str) -> str:
    """The primary language subtag ("en" for "en-US"): what careloop's templates key on."""
    return tag.strip().split("-")[0].lower()[:16]


def clean(incoming: IncomingPatient) -> Clean:
    deceased_on = incoming.deceased_on
    if deceased_on is None and incoming.deceased:
        # Dead, date unknown: the day careloop learnt it stops outreach from today.
        deceased_on = practice_today()
    return Clean(
        given_name=" ".join(incoming.given_name.split()),
        family_name=" ".join(incoming.family_name.split()),
        birth_date=incoming.birth_date,
        sex=incoming.sex if incoming.sex in Sex.values else Sex.UNKNOWN,
        identifiers=_identifiers(incoming),
        contacts=_contacts(incoming),
        place=_place(incoming),
        language=_language(incoming.preferred_language),
        deceased_on=deceased_on,
    )


# --- the upsert ---------------------------------------------------------------------


def patient_upsert(
    *,
    source: Source,
    source_patient_id: str,
    incoming: IncomingPatient,
    caller_remembers: bool = False,
    held_patient_id: uuid.UUID | None = None,
) -> UpsertResult:
    """Create or update the careloop patient the source calls `source_patient_id`.

    Runs inside the caller's transaction when there is one (the import's batch), or
    in its own. Equal data sent again (under a new version or not) is `UNCHANGED`.

    The (source, Patient, id) -> patient mapping is a `SourceRecord`, looked up and
    written here. A pipeline that keeps its source records itself (the FHIR import,
    which also stores versions and hashes) passes `caller_remembers=True` and the
    patient it holds for the id (`held_patient_id`, None when the id is new to it).
    """
    data = clean(incoming)
    with transaction.atomic(savepoint=False):
        if caller_remembers:
            held = Patient.objects.filter(pk=held_patient_id).first() if held_patient_id else None
            patient = _survivor(held)
            if patient is not None:
                return UpsertResult(patient.pk, _update(source, patient, data))
            return _arrive(source, source_patient_id, data)
        record = (
            SourceRecord.objects.filter(
                source=source, resource_type=PATIENT, resource_id=source_patient_id
            )
            .select_related("patient")
            .first()
        )
        patient = _survivor(record.patient) if record is not None else None
        if patient is not None:
            outcome = _update(source, patient, data)
        else:
            result = _arrive(source, source_patient_id, data)
            patient, outcome = Patient(pk=result.patient_id), result.outcome
        _remember(record, source, source_patient_id, patient.pk, data)
        return UpsertResult(patient.pk, outcome)


def _survivor(patient: Patient | None) -> Patient | None:
    """The record that lives on: a merged one hands over to the one it was merged into."""
    seen = 0
    while patient is not None and patient.merged_into_id is not None and seen < 10:
        patient = Patient.objects.get(pk=patient.merged_into_id)
        seen += 1
    return patient


def _arrive(source: Source, source_patient_id: str, data: Clean) -> UpsertResult:
    """A patient new to this source: the same person careloop knows, or a new record."""
    decision: Decision = match_new_patient(
        source=source, source_patient_id=source_patient_id, data=data
    )
    if decision.same is not None:
        patient = decision.same
        return UpsertResult(
            patient.pk, _update(source, patient, data, taken=decision.taken_identifiers)
        )
    patient = _create(source, data, taken=decision.taken_identifiers)
    if not decision.reviews:
        return UpsertResult(patient.pk, UpsertOutcome.CREATED)
    at = now()
    MatchReview.objects.bulk_create(
        MatchReview(
            source=source,
            incoming=patient,
            candidate_id=candidate_id,
            reason=reason[:200],
            created_at=at,
        )
        for candidate_id, reason in decision.reviews
    )
    return UpsertResult(patient.pk, UpsertOutcome.REVIEW)


def content_hash(data: Clean) -> int:
    """A signed 64-bit digest of what careloop keeps from the feed's patient."""
    digest = hashlib.blake2b(repr(data).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _remember(
    record: SourceRecord | None,
    source: Source,
    source_patient_id: str,
    patient_id: uuid.UUID,
    data: Clean,
) -> None:
    """The mapping (source, Patient, id) -> patient, for feeds without their own."""
    at = now()
    if record is None:
        SourceRecord.objects.create(
            source=source,
            resource_type=PATIENT,
            resource_id=source_patient_id,
            content_hash=content_hash(data),
            target_id=patient_id,
            patient_id=patient_id,
            created_at=at,
            updated_at=at,
        )
        return
    if record.patient_id == patient_id and record.target_id == patient_id:
        return
    record.patient_id = patient_id
    record.target_id = patient_id
    record.updated_at = at
    record.save(update_fields=["patient", "target_id", "updated_at"])


@dataclass(slots=True)
class NewPatientRows:
    """A new patient and the rows that come with it, not yet written."""

    patient: Patient
    contacts: list[ContactPoint]
    identifiers: list[PatientIdentifier]
    timeline: TimelineEvent


def new_patient_rows(
    source: Source, data: Clean, *, taken: frozenset[tuple[str, bytes]], at: datetime.datetime
) -> NewPatientRows:
    """The rows of a patient new to careloop (the import writes many at once)."""
    place = data.place
    patient = Patient(
        id=uuid.uuid4(),
        given_name=data.given_name,
        family_name=data.family_name,
        birth_date=data.birth_date,
        sex=data.sex,
        preferred_language=data.language or "en",
        address_line=place.line if place else None,
        city=place.city if place else None,
        postal_code=place.postal_code if place else None,
        state=place.state if place else "",
        time_zone=(place.time_zone if place else None) or settings.PRACTICE_TIME_ZONE,
        deceased_on=data.deceased_on,
        created_at=at,
        updated_at=at,
    )
    return NewPatientRows(
        patient=patient,
        contacts=_contact_rows(patient, data.contacts, rank_from=1),
        identifiers=[
            PatientIdentifier(patient=patient, system=i.system, kind=i.kind, value=i.value)
            for i in data.identifiers
            if (i.system, i.index) not in taken
        ],
        timeline=TimelineEvent(
            patient=patient,
            at=at,
            kind=TimelineKind.PROFILE,
            summary=f"Registered from the EHR feed {source.name}"[:200],
            ref_type="ehr_source",
            ref_id=str(source.pk),
        ),
    )


def _create(source: Source, data: Clean, *, taken: frozenset[tuple[str, bytes]]) -> Patient:
    at = now()
    rows = new_patient_rows(source, data, taken=taken, at=at)
    patient = rows.patient
    patient.save(force_insert=True)
    ContactPoint.objects.bulk_create(rows.contacts)
    PatientIdentifier.objects.bulk_create(rows.identifiers)
    rows.timeline.save(force_insert=True)
    # The stage of a living newcomer ("no visit yet") changes as soon as the same import
    # brings visits and conditions: the lifecycle sweep takes up patients never
    # evaluated. A death is final: set it now.
    if data.deceased_on is not None:
        lifecycle_recompute(patient=patient, as_of=at)
    return patient


def _contact_rows(
    patient: Patient, contacts: tuple[Contact, ...], *, rank_from: int
) -> list[ContactPoint]:
    rows = []
    for rank, contact in enumerate(contacts, start=rank_from):
        phone = contact.system == ContactSystem.PHONE
        rows.append(
            ContactPoint(
                patient=patient,
                system=contact.system,
                use=contact.use,
                value=contact.value,
                rank=min(rank, 32767),
                # A home or work number may be a landline: voice only until someone checks.
                can_sms=phone and contact.use == ContactUse.MOBILE,
                can_voice=phone,
                can_email=not phone,
            )
        )
    return rows


# --- updates --------------------------------------------------------------------------


def _update(
    source: Source,
    patient: Patient,
    data: Clean,
    *,
    taken: frozenset[tuple[str, bytes]] | None = None,
) -> UpsertOutcome:
    """Bring the patient in line with the feed; which parts changed go on the timeline.

    Contact points and identifiers are added, never removed: careloop owns how a
    patient is reached (staff verify numbers, patients opt in on them), so a number the
    EHR no longer lists stays until staff remove it. A death is never undone by a feed
    that stops mentioning it.
    """
    changed = _update_profile(patient, data)
    if _add_contacts(patient, data.contacts):
        changed.append("contact points")
    if _sync_identifiers(patient, data.identifiers, taken):
        changed.append("identifiers")
    if not changed:
        return UpsertOutcome.UNCHANGED
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary=f"Updated from the EHR feed {source.name}: {', '.join(changed)}",
        ref_type="ehr_source",
        ref_id=str(source.pk),
    )
    if "deceased" in changed:
        lifecycle_recompute(patient=patient)
    return UpsertOutcome.UPDATED


def _update_profile(patient: Patient, data: Clean) -> list[str]:
    """Set the demographics that differ; the names of the parts that changed."""
    fields: list[str] = []
    parts: list[str] = []

    def put(part: str, **values: object) -> None:
        differs = [name for name, value in values.items() if getattr(patient, name) != value]
        if not differs:
            return
        for name, value in values.items():
            setattr(patient, name, value)
        fields.extend(values)
        parts.append(part)

    put("name", given_name=data.given_name, family_name=data.family_name)
    put("birth date", birth_date=data.birth_date)
    if data.sex != Sex.UNKNOWN:
        put("sex", sex=data.sex)
    if data.place is not None:
        place = data.place
        put(
            "address",
            address_line=place.line or None,
            city=place.city or None,
            state=place.state,
            postal_code=place.postal_code or None,
        )
        if place.time_zone:
            put("time zone", time_zone=place.time_zone)
    if data.language:
        put("language", preferred_language=data.language)
    if data.deceased_on is not None and patient.deceased_on is None:
        put("deceased", deceased_on=data.deceased_on)
    if not fields:
        return []
    if "given_name" in fields:
        fields += ["given_name_bidx", "family_name_bidx"]
    patient.updated_at = now()
    patient.save(update_fields=[*fields, "updated_at"])
    return parts


def _add_contacts(patient: Patient, contacts: tuple[Contact, ...]) -> bool:
    if not contacts:
        return False
    held = list(ContactPoint.objects.filter(patient=patient).values_list("value_bidx", "rank"))
    known = {bytes(index) for index, _ in held if index is not None}
    new = tuple(c for c in contacts if c.index not in known)
    if not new:
        return False
    next_rank = max((rank for _, rank in held), default=0) + 1
    ContactPoint.objects.bulk_create(_contact_rows(patient, new, rank_from=next_rank))
    return True


def _sync_identifiers(
    patient: Patient,
    identifiers: tuple[Identifier, ...],
    taken: frozenset[tuple[str, bytes]] | None,
) -> bool:
    """Add the identifiers the patient lacks; a system's changed value replaces the old.

    An identifier another patient holds is left where it is (one value names one patient
    per system; the database says so too). A record that holds several values of one
    system (the survivor of a merge keeps both records' MRNs) keeps them all: a value
    new to it is added, since which of the old ones it replaces is unknowable.
    """
    if not identifiers:
        return False
    if taken is None:
        taken = held_elsewhere(identifiers, patient.pk)
    held: dict[str, list[PatientIdentifier]] = {}
    for existing in PatientIdentifier.objects.filter(patient=patient):
        held.setdefault(existing.system, []).append(existing)
    changed = False
    for ident in identifiers:
        if (ident.system, ident.index) in taken:
            continue
        rows = held.get(ident.system, [])
        if any(r.value_bidx is not None and bytes(r.value_bidx) == ident.index for r in rows):
            continue
        row = (
            rows[0]
            if len(rows) == 1
            else PatientIdentifier(patient=patient, system=ident.system, kind=ident.kind)
        )
        row.value = ident.value
        row.kind = ident.kind
        row.save()  # the whole row: the value is sealed and indexed again
        if len(rows) != 1:
            held.setdefault(ident.system, []).append(row)
        changed = True
    return changed
