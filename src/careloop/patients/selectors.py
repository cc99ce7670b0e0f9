"""Read paths for patients: search through the blind indexes, and the patient's page.

Names and contact details are encrypted (PHI class I), so search is exact match on the
HMAC blind index of each normalised value (careloop.security.fields.blind_value), and
lists cannot be sorted by name in SQL: they come newest first.
"""

from __future__ import annotations

import datetime
import enum
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet

from careloop.clinical.models import ClinicalFact, FactKind
from careloop.core import clock
from careloop.core.errors import NotFound
from careloop.core.practice import age_on, practice_today
from careloop.patients.models import ContactPoint, Coverage, Patient, PatientIdentifier
from careloop.scheduling.models import Appointment
from careloop.security import normalize
from careloop.security.audit import audit_record
from careloop.security.fields import blind_value
from careloop.security.permissions import Actor, Op, Resource, actor_allowed, require
from careloop.security.scope import patient_scope

PAGE_SIZE = 25
MAX_QUERY_LENGTH = 200
# What a row of the list shows, as the audit log records it.
LIST_FIELDS = ("name", "birth_date", "sex", "lifecycle_stage", "primary_provider")
# More words than this is not a name; splitting them all would only make the query slow.
MAX_NAME_WORDS = 6
LIST_ORDER = ("-created_at", "-id")
RECENT_APPOINTMENTS = 10

_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_DIGIT = re.compile(r"\d")


class SearchKind(enum.StrEnum):
    ALL = "all"
    NAME = "name"
    BIRTH_DATE = "birth_date"
    CONTACT = "contact"
    IDENTIFIER = "identifier"


_KIND_LABELS = {
    SearchKind.ALL: "",
    SearchKind.NAME: "name",
    SearchKind.BIRTH_DATE: "date of birth",
    SearchKind.CONTACT: "phone, e-mail or MRN",
    SearchKind.IDENTIFIER: "MRN or identifier",
}


@dataclass(frozen=True)
class PatientRow:
    """One line of the patient list: only what the list shows is decrypted."""

    id: uuid.UUID
    family_name: str
    given_name: str
    preferred_name: str | None
    birth_date: datetime.date
    age: int
    sex: str
    lifecycle_stage: str
    primary_provider: str | None


@dataclass(frozen=True)
class PatientPage:
    rows: list[PatientRow]
    number: int
    num_pages: int
    total: int
    query: str
    kind: SearchKind

    @property
    def matched_on(self) -> str:
        return _KIND_LABELS[self.kind]

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages

    @property
    def first_index(self) -> int:
        return (self.number - 1) * PAGE_SIZE + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1 if self.rows else 0


def _parse_date(text: str) -> datetime.date | None:
    """The date in YYYY-MM-DD or MM/DD/YYYY, or None for an impossible one (2024-02-30)."""
    if match := _ISO_DATE.match(text):
        year, month, day = (int(g) for g in match.groups())
    elif match := _US_DATE.match(text):
        month, day, year = (int(g) for g in match.groups())
    else:
        return None
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


def search_kind(query: str) -> SearchKind:
    """What a search box entry most likely is, judged by its shape."""
    text = query.strip()
    if not text:
        return SearchKind.ALL
    if _ISO_DATE.match(text) or _US_DATE.match(text):
        return SearchKind.BIRTH_DATE
    compact = "".join(text.split())
    digits = len(_DIGIT.findall(compact))
    if "@" in text or (digits >= 7 and digits >= 0.6 * len(compact)):
        return SearchKind.CONTACT
    if len(text.split()) == 1 and digits:
        return SearchKind.IDENTIFIER
    return SearchKind.NAME


def _name_condition(text: str) -> Q | None:
    """Blind-index match of the words as one name, or as given + family in either order."""
    words = normalize.name(text).split()[:MAX_NAME_WORDS]
    if not words:
        return None

    def bidx(parts: list[str]) -> bytes | None:
        return blind_value("name", " ".join(parts))

    whole = bidx(words)
    condition = Q(given_name_bidx=whole) | Q(family_name_bidx=whole)
    for split in range(1, len(words)):
        first, rest = bidx(words[:split]), bidx(words[split:])
        condition |= Q(given_name_bidx=first, family_name_bidx=rest)
        condition |= Q(given_name_bidx=rest, family_name_bidx=first)
    return condition


def _contact_condition(text: str) -> Q | None:
    matches: list[QuerySet[Any]] = []
    if (contact := blind_value("contact", text)) is not None:
        matches.append(
            ContactPoint.objects.filter(value_bidx=contact).order_by().values("patient_id")
        )
    # A run of digits may as well be a numeric MRN as a phone number.
    if "@" not in text and (identifier := blind_value("identifier", text)) is not None:
        matches.append(
            PatientIdentifier.objects.filter(value_bidx=identifier).order_by().values("patient_id")
        )
    if not matches:
        return None
    # One UNION subquery, not `id IN (a) OR id IN (b)`, which PostgreSQL can only answer
    # by scanning every patient.
    ids = matches[0].union(*matches[1:]) if len(matches) > 1 else matches[0]
    return Q(id__in=ids)


def _identifier_condition(text: str) -> Q | None:
    value = blind_value("identifier", text)
    if value is None:
        return None
    return Q(id__in=PatientIdentifier.objects.filter(value_bidx=value).values("patient_id"))


def _search_queryset(actor: Actor, query: str, kind: SearchKind) -> QuerySet[Patient]:
    patients = (
        # A merged duplicate is still readable by id, but no longer listed or found.
        Patient.objects.filter(patient_scope(actor), merged_into__isnull=True)
        .select_related("primary_provider")
        .order_by(*LIST_ORDER)
    )
    if kind is SearchKind.ALL:
        return patients
    condition: Q | None
    if kind is SearchKind.BIRTH_DATE:
        born = _parse_date(query)
        condition = None if born is None else Q(birth_date=born)
    elif kind is SearchKind.CONTACT:
        condition = _contact_condition(query)
    elif kind is SearchKind.IDENTIFIER:
        condition = _identifier_condition(query)
    else:
        condition = _name_condition(query)
    return patients.none() if condition is None else patients.filter(condition)


def _row(patient: Patient, today: datetime.date) -> PatientRow:
    provider = patient.primary_provider
    return PatientRow(
        id=patient.id,
        family_name=patient.family_name,
        given_name=patient.given_name,
        preferred_name=patient.preferred_name,
        birth_date=patient.birth_date,
        age=age_on(patient.birth_date, today),
        sex=patient.get_sex_display(),
        lifecycle_stage=patient.get_lifecycle_stage_display(),
        primary_provider=provider.display_name if provider else None,
    )


def patient_search(*, actor: Actor, query: str, page: int | str | None = 1) -> PatientPage:
    """One page of patients matching a search box entry; all patients for an empty one.

    The entry is read by its shape (`search_kind`): a date searches birth dates, an
    e-mail address or phone number the contact points (and a number the identifiers
    too), one token with digits the identifiers (MRNs), anything else names.
    """
    require(actor, Op.READ, Resource.DEMOGRAPHICS)
    text = query.strip()[:MAX_QUERY_LENGTH]
    kind = search_kind(text)
    paginator = Paginator(_search_queryset(actor, text, kind), PAGE_SIZE)
    current = paginator.get_page(page)
    today = practice_today()
    rows = [_row(patient, today) for patient in current.object_list]
    # A list that shows names is a read of PHI. The search text itself is never
    # recorded (it may be a name); what kind of search it was, and how much it showed, is.
    audit_record(
        action="patient.search" if text else "patient.list",
        actor=actor,
        resource_type="Patient",
        resource_id=f"{kind.value if text else 'all'}:page={current.number}:shown={len(rows)}",
        fields=LIST_FIELDS,
    )
    return PatientPage(
        rows=rows,
        number=current.number,
        num_pages=paginator.num_pages,
        total=paginator.count,
        query=text,
        kind=kind,
    )


def patient_get(*, actor: Actor, patient_id: uuid.UUID) -> Patient:
    """The patient, or `NotFound` whether it is missing or outside the actor's scope."""
    require(actor, Op.READ, Resource.DEMOGRAPHICS, patient_id=patient_id)
    patients = Patient.objects.filter(patient_scope(actor))
    try:
        return patients.select_related("primary_provider", "home_location").get(pk=patient_id)
    except Patient.DoesNotExist:
        raise NotFound from None


@dataclass(frozen=True)
class FactCount:
    kind: str
    label: str
    count: int


@dataclass(frozen=True)
class PatientProfile:
    """The patient page's content. A part the actor's role may not read is None (not
    loaded, not shown), which is different from an empty list (nothing on record)."""

    patient: Patient
    age: int
    identifiers: list[PatientIdentifier]
    contact_points: list[ContactPoint] | None
    coverages: list[Coverage] | None
    upcoming_appointments: list[Appointment] | None
    recent_appointments: list[Appointment] | None
    fact_counts: list[FactCount] | None


def _appointments(patient: Patient) -> QuerySet[Appointment]:
    return Appointment.objects.filter(patient=patient).select_related(
        "provider", "location", "appointment_type"
    )


def _fact_counts(patient: Patient) -> list[FactCount]:
    labels = dict(FactKind.choices)
    rows = (
        ClinicalFact.objects.filter(patient=patient)
        .order_by()
        .values_list("kind")
        .annotate(n=Count("id"))
    )
    counts = [FactCount(kind=kind, label=labels.get(kind, kind), count=n) for kind, n in rows]
    return sorted(counts, key=lambda fact: fact.label)


def patient_profile(*, actor: Actor, patient_id: uuid.UUID) -> PatientProfile:
    """What the patient page shows to this actor, in a fixed handful of queries.

    Minimum necessary within the page: each part is loaded only when the actor's role
    may read its class of data (careloop.security.permissions).
    """
    patient = patient_get(actor=actor, patient_id=patient_id)
    at = clock.now()

    def may(resource: Resource) -> bool:
        return actor_allowed(actor, Op.READ, resource)

    appointments = may(Resource.APPOINTMENTS)
    shown = ["demographics", "identifiers"] + [
        name
        for name, resource in (
            ("contact", Resource.CONTACT),
            ("coverage", Resource.COVERAGE),
            ("appointments", Resource.APPOINTMENTS),
            ("clinical_summary", Resource.CLINICAL),
        )
        if may(resource)
    ]
    audit_record(
        action="patient.view",
        actor=actor,
        patient_id=patient.pk,
        resource_type="Patient",
        resource_id=str(patient.pk),
        fields=shown,
    )
    return PatientProfile(
        patient=patient,
        age=age_on(patient.birth_date, practice_today()),
        identifiers=list(patient.identifiers.all()),
        contact_points=list(patient.contact_points.all()) if may(Resource.CONTACT) else None,
        coverages=list(patient.coverages.all()) if may(Resource.COVERAGE) else None,
        upcoming_appointments=list(
            _appointments(patient).filter(start__gte=at).order_by("start")[:RECENT_APPOINTMENTS]
        )
        if appointments
        else None,
        recent_appointments=list(
            _appointments(patient).filter(start__lt=at).order_by("-start")[:RECENT_APPOINTMENTS]
        )
        if appointments
        else None,
        fact_counts=_fact_counts(patient) if may(Resource.CLINICAL) else None,
    )


def patient_search_queryset(*, actor: Actor, query: str) -> QuerySet[Patient]:
    """What `patient_search` matches, unpaged and newest first (`LIST_ORDER`).

    For callers that page by key instead of by page number (the JSON API's cursors).
    """
    require(actor, Op.READ, Resource.DEMOGRAPHICS)
    text = query.strip()[:MAX_QUERY_LENGTH]
    return _search_queryset(actor, text, search_kind(text))
