"""Is a patient new to a source someone careloop already knows? (careloop.ehr.identity)

Two steps, cheapest and surest first: identifiers through their blind index, then the
patients born the same day (few, so their names are opened and compared here). The
answer is the same person only when the evidence is strong; a likely match is a list
of reviews for staff, with the reason in field names only ("birth date, family name,
given name; no phone or e-mail agrees"), never the values.
"""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from careloop.ehr.models import Source, SourceRecord
from careloop.patients.models import ContactPoint, Patient, PatientIdentifier
from careloop.security import normalize

if TYPE_CHECKING:
    from careloop.ehr.identity import Clean, Identifier

# How alike two given names must be (difflib ratio, normalised) to count as "close".
GIVEN_SIMILARITY = 0.8
# Patients born on one day that are compared at most (a practice has a handful).
MAX_SAME_DAY = 500


@dataclass(frozen=True, slots=True)
class Decision:
    # The patient the incoming one is, when that is certain.
    same: Patient | None
    # (existing patient id, reason) for each likely duplicate: staff decide.
    reviews: tuple[tuple[uuid.UUID, str], ...]
    # Identifiers (system, blind index) of the incoming patient that someone else holds.
    taken_identifiers: frozenset[tuple[str, bytes]]


def held_elsewhere(
    identifiers: tuple[Identifier, ...], patient_id: uuid.UUID | None
) -> frozenset[tuple[str, bytes]]:
    """The (system, index) pairs of `identifiers` that patients other than this one hold."""
    if not identifiers:
        return frozenset()
    wanted = {(i.system, i.index) for i in identifiers}
    rows = _identifier_rows(identifiers)
    if patient_id is not None:
        rows = rows.exclude(patient_id=patient_id)
    found = {(system, bytes(index)) for system, index in rows.values_list("system", "value_bidx")}
    return frozenset(found & wanted)


def _identifier_rows(identifiers: tuple[Identifier, ...]) -> QuerySet[PatientIdentifier]:
    """Rows holding any of these values; the caller keeps those of the same system.

    One IN on the indexed blind index: an OR of (system, index) pairs plans worse."""
    return PatientIdentifier.objects.filter(
        value_bidx__in=[i.index for i in identifiers]
    ).order_by()


def _known_to_source(
    source: Source, source_patient_id: str, patient_ids: set[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these patients the source already sends under another id of its own."""
    if not patient_ids:
        return set()
    return set(
        SourceRecord.objects.filter(
            source=source, resource_type="Patient", patient_id__in=patient_ids
        )
        .exclude(resource_id=source_patient_id)
        .values_list("patient_id", flat=True)
    )


def match_new_patient(*, source: Source, source_patient_id: str, data: Clean) -> Decision:
    """The same person, the likely ones, or nobody, for a patient new to `source`."""
    holders: dict[tuple[str, bytes], tuple[uuid.UUID, bool, object]] = {}
    if data.identifiers:
        wanted = {(i.system, i.index) for i in data.identifiers}
        rows = _identifier_rows(data.identifiers).values_list(
            "system", "value_bidx", "patient_id", "patient__merged_into", "patient__birth_date"
        )
        for system, index, patient_id, merged_into, birth_date in rows:
            if (system, bytes(index)) in wanted:
                holders[(system, bytes(index))] = (patient_id, merged_into is not None, birth_date)
    taken = frozenset(holders)
    live = {pid: born for pid, merged, born in holders.values() if not merged}
    for known in _known_to_source(source, source_patient_id, set(live)):
        del live[known]
    if live:
        return _by_identifier(data, live, holders)
    return _by_demographics(source, source_patient_id, data, taken)


def _by_identifier(
    data: Clean,
    live: dict[uuid.UUID, object],
    holders: dict[tuple[str, bytes], tuple[uuid.UUID, bool, object]],
) -> Decision:
    same_day = [pid for pid, born in live.items() if born == data.birth_date]
    if len(same_day) == 1:
        same = Patient.objects.get(pk=same_day[0])
        taken = frozenset(key for key, (pid, _, _) in holders.items() if pid != same.pk)
        return Decision(same, (), taken)
    if same_day:
        reason = "identifier, birth date; the identifiers name more than one record"
        reviews = tuple((pid, reason) for pid in same_day)
    else:
        reviews = tuple((pid, "identifier; birth date differs") for pid in live)
    return Decision(None, reviews, frozenset(holders))


@dataclass(frozen=True, slots=True)
class _Names:
    given: str
    family: str

    @classmethod
    def of(cls, given: str, family: str) -> _Names:
        return cls(normalize.name(given), normalize.name(family))

    def first(self) -> str:
        return self.given.split(" ", 1)[0]


def _initial(a: _Names, b: _Names) -> bool:
    """One given name is only the other's initial ("J" and "John")."""
    x, y = a.first(), b.first()
    return bool(x and y) and (len(x) == 1 or len(y) == 1) and x[0] == y[0]


def _close(a: _Names, b: _Names) -> bool:
    if not (a.given and b.given):
        return False
    if a.first() == b.first():
        return True
    return difflib.SequenceMatcher(None, a.given, b.given).ratio() >= GIVEN_SIMILARITY


def _by_demographics(
    source: Source, source_patient_id: str, data: Clean, taken: frozenset[tuple[str, bytes]]
) -> Decision:
    wanted = _Names.of(data.given_name, data.family_name)
    if not wanted.family and not wanted.given:
        return Decision(None, (), taken)
    alike: dict[uuid.UUID, tuple[Patient, _Names]] = {}
    same_day = Patient.objects.filter(
        birth_date=data.birth_date, merged_into__isnull=True
    ).order_by()
    for patient in same_day.only("id", "given_name", "family_name")[:MAX_SAME_DAY]:
        names = _Names.of(patient.given_name, patient.family_name)
        if (
            names.family == wanted.family
            or names.given == wanted.given
            or names == _Names(wanted.family, wanted.given)
        ):
            alike[patient.pk] = (patient, names)
    for known in _known_to_source(source, source_patient_id, set(alike)):
        del alike[known]
    if not alike:
        return Decision(None, (), taken)
    sharing = _sharing_contacts(data, set(alike))
    strong: list[Patient] = []
    reviews: list[tuple[uuid.UUID, str]] = []
    for pid, (patient, names) in alike.items():
        verdict = _verdict(wanted, names, pid in sharing)
        if verdict == "same":
            strong.append(patient)
        elif verdict:
            reviews.append((pid, verdict))
    if len(strong) == 1 and not reviews:
        return Decision(strong[0], (), held_elsewhere(data.identifiers, strong[0].pk))
    # Several records each look certain: none of them is, so staff choose.
    reviews += [
        (p.pk, "birth date, family name, given name, phone or e-mail; more than one record")
        for p in strong
    ]
    return Decision(None, tuple(reviews), taken)


def _sharing_contacts(data: Clean, patient_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    indexes = [contact.index for contact in data.contacts]
    if not indexes:
        return set()
    return set(
        ContactPoint.objects.filter(patient_id__in=patient_ids, value_bidx__in=indexes)
        .values_list("patient_id", flat=True)
        .distinct()
    )


def _verdict(wanted: _Names, names: _Names, shares_contact: bool) -> str:
    """ "same", a review reason, or "" (not the same person), for one same-day patient."""
    corroboration = "phone or e-mail" if shares_contact else ""
    unconfirmed = "; no identifier, phone or e-mail agrees"
    if wanted.family and names.family == wanted.family:
        if names.given == wanted.given or _initial(wanted, names):
            if shares_contact:
                return "same"
            how = "given name" if names.given == wanted.given else "given initial"
            return f"birth date, family name, {how}{unconfirmed}"
        if _close(wanted, names):
            matched = ", ".join(filter(None, ["birth date, family name", corroboration]))
            return f"{matched}; given name differs slightly"
        return ""
    if wanted.given and names == _Names(wanted.family, wanted.given):
        return "birth date; given and family names swapped"
    if wanted.given and names.given == wanted.given and shares_contact:
        return "birth date, given name, phone or e-mail; family name differs"
    return ""
