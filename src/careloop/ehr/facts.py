"""Clinical FHIR resources as clinical-fact rows (careloop.clinical.models.ClinicalFact).

A mapper reads what quality measures and the CRM need from one resource and nothing
else: codes (every coding of the main concept, each its own part), components (the two
halves of a blood pressure), reasons (a not-done reason, a request's reason), dates,
status, category, value. Free text (notes, `text`, valueString) is not kept: it would be
class-I PHI in a table that is meant to be coded, class II.

How the columns are filled, per resource type:

- `status`: the resource's status; for Condition and AllergyIntolerance the clinical
  status, with the verification status in `value_code` (a refuted or entered-in-error
  diagnosis must not count).
- `effective_start`/`effective_end`: when it happened (effective[x], performed[x],
  occurrence[x], onset/abatement, period, a medication's dosage bounds).
- `recorded_at`: when it was recorded or ordered (issued, recordedDate, authoredOn).
- `negated`: documented as not done / do not perform (status not-done, doNotPerform,
  QI-Core's notDone modifier or a not-done profile), with the reason as `reason` parts.

Mappers are plain functions over dicts: this runs for every resource of a Bulk Data
export, so no validation library and no model instance per row. A resource careloop
cannot use (no subject, no code, a malformed date) raises `Reject` with a reason that
names fields, never values.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from careloop.clinical.models import FactElement, FactKind
from careloop.ehr.handlers import Reject, subject_id

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
NOT_DONE_REASON = "qicore-notDoneReason"
DO_NOT_PERFORM_REASON = "qicore-doNotPerformReason"
MAX_CODE = 40
MAX_SYSTEM = 100
MAX_DISPLAY = 200


@dataclass(slots=True)
class Part:
    element: str
    system: str
    code: str
    display: str = ""
    value_num: float | None = None
    value_code: str = ""
    value_system: str = ""
    unit: str = ""


@dataclass(slots=True)
class FactResource:
    """One clinical resource, ready to become rows (part 0..n)."""

    kind: str
    subject: str
    parts: list[Part] = field(default_factory=list)
    status: str = ""
    category: str = ""
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    recorded: datetime.datetime | None = None
    negated: bool = False
    intent: str = ""


# --- values -----------------------------------------------------------------------


def when(value: Any, what: str) -> datetime.datetime | None:
    """A FHIR date, dateTime or instant as an aware datetime (partial dates: the
    start of the year or month; a date without a time: midnight UTC)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < 4:
        raise Reject(f"{what} is not a FHIR date")
    try:
        if len(value) == 4:
            return datetime.datetime(int(value), 1, 1, tzinfo=datetime.UTC)
        if len(value) == 7:
            return datetime.datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=datetime.UTC)
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise Reject(f"{what} is not a FHIR date") from None
    if parsed.tzinfo is None:
        # A date, or a dateTime without an offset (FHIR requires one when a time is given).
        return parsed.replace(tzinfo=datetime.UTC)
    return parsed


def _period(value: Any, what: str) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    if not isinstance(value, dict):
        raise Reject(f"{what} is not a Period")
    return when(value.get("start"), f"{what}.start"), when(value.get("end"), f"{what}.end")


def _timing(resource: dict[str, Any], stem: str) -> tuple[datetime.datetime | None, ...]:
    """[stem]DateTime / [stem]Period / [stem]Instant / [stem]Date as (start, end)."""
    value = resource.get(f"{stem}DateTime")
    if value is not None:
        moment = when(value, f"{stem}DateTime")
        return moment, moment
    value = resource.get(f"{stem}Period")
    if value is not None:
        return _period(value, f"{stem}Period")
    for suffix in ("Instant", "Date"):
        value = resource.get(f"{stem}{suffix}")
        if value is not None:
            moment = when(value, f"{stem}{suffix}")
            return moment, moment
    return None, None


def _codings(concept: Any) -> Iterator[tuple[str, str, str]]:
    if not isinstance(concept, dict):
        return
    codings = concept.get("coding")
    if not isinstance(codings, list):
        return
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        code = coding.get("code")
        if not isinstance(code, str) or not code:
            continue
        system = coding.get("system")
        display = coding.get("display")
        yield (
            system[:MAX_SYSTEM] if isinstance(system, str) else "",
            code[:MAX_CODE],
            display[:MAX_DISPLAY] if isinstance(display, str) else "",
        )


def _first_code(concept: Any) -> str:
    for _system, code, _display in _codings(concept):
        return code
    return ""


def _category(resource: dict[str, Any], preferred_system: str = "") -> str:
    categories = resource.get("category")
    if isinstance(categories, dict):
        categories = [categories]
    if not isinstance(categories, list):
        return ""
    first = ""
    for concept in categories:
        for system, code, _display in _codings(concept):
            if preferred_system and system == preferred_system:
                return code
            first = first or code
    return first


# Categories that decide a QI-Core Observation profile (screening assessment, vital
# signs, ...): kept over others (procedure, social-history) when an Observation has
# several, since `category` holds one. (caregaps)
PROFILE_CATEGORIES = ("survey", "vital-signs", "laboratory", "imaging", "exam")


def _observation_category(resource: dict[str, Any]) -> str:
    categories = resource.get("category")
    codes = [
        code
        for concept in (categories if isinstance(categories, list) else [categories])
        for system, code, _display in _codings(concept)
        if system == OBSERVATION_CATEGORY
    ]
    return next((c for c in codes if c in PROFILE_CATEGORIES), "") or _category(
        resource, OBSERVATION_CATEGORY
    )


def _code_parts(resource: dict[str, Any], key: str, element: str = FactElement.CODE) -> list[Part]:
    parts = [
        Part(element, system, code, display)
        for system, code, display in _codings(resource.get(key))
    ]
    return parts


def _require_code(resource: dict[str, Any], key: str, rtype: str) -> list[Part]:
    parts = _code_parts(resource, key)
    if not parts:
        raise Reject(f"{rtype}: {key} has no coding with a code")
    return parts


def _extensions(resource: dict[str, Any], key: str = "extension") -> Iterator[dict[str, Any]]:
    extensions = resource.get(key)
    if isinstance(extensions, list):
        for extension in extensions:
            if isinstance(extension, dict) and isinstance(extension.get("url"), str):
                yield extension


def _negated(resource: dict[str, Any]) -> bool:
    if resource.get("status") == "not-done" or resource.get("doNotPerform") is True:
        return True
    for key in ("modifierExtension", "extension"):
        for extension in _extensions(resource, key):
            url = extension["url"]
            if (url.endswith(("qicore-notDone", "doNotPerform"))) and extension.get(
                "valueBoolean"
            ) is True:
                return True
    meta = resource.get("meta")
    if isinstance(meta, dict):
        profiles = meta.get("profile")
        if isinstance(profiles, list):
            return any(isinstance(p, str) and "notdone" in p.lower() for p in profiles)
    return False


def _reason_parts(resource: dict[str, Any], *keys: str) -> list[Part]:
    parts: list[Part] = []
    for extension in _extensions(resource):
        if extension["url"].endswith((NOT_DONE_REASON, DO_NOT_PERFORM_REASON)):
            for system, code, display in _codings(extension.get("valueCodeableConcept")):
                parts.append(Part(FactElement.REASON, system, code, display))
    for key in keys:
        value = resource.get(key)
        concepts = value if isinstance(value, list) else [value]
        for concept in concepts:
            for system, code, display in _codings(concept):
                parts.append(Part(FactElement.REASON, system, code, display))
    return parts


def _subject(resource: dict[str, Any], rtype: str, key: str = "subject") -> str:
    patient = subject_id(resource, key)
    if patient is None:
        raise Reject(f"{rtype}: {key} is not a Patient reference")
    return patient


def _status(resource: dict[str, Any]) -> str:
    status = resource.get("status")
    return status[:24] if isinstance(status, str) else ""


def _quantity(part: Part, quantity: Any, what: str) -> None:
    if not isinstance(quantity, dict):
        raise Reject(f"{what} is not a Quantity")
    value = quantity.get("value")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Reject(f"{what}.value is not a number")
        part.value_num = float(value)
    unit = quantity.get("code") or quantity.get("unit") or ""
    part.unit = unit[:24] if isinstance(unit, str) else ""


def _value(part: Part, holder: dict[str, Any], what: str) -> None:
    """Fill `part` from holder's value[x] (free-text values are not kept)."""
    if "valueQuantity" in holder:
        _quantity(part, holder["valueQuantity"], f"{what}.valueQuantity")
    elif "valueCodeableConcept" in holder:
        for system, code, _display in _codings(holder["valueCodeableConcept"]):
            part.value_code, part.value_system = code, system
            break
    elif "valueBoolean" in holder:
        part.value_code = "true" if holder["valueBoolean"] is True else "false"
    elif "valueInteger" in holder:
        value = holder["valueInteger"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise Reject(f"{what}.valueInteger is not an integer")
        part.value_num = float(value)


def _with_value(parts: list[Part], holder: dict[str, Any], what: str) -> None:
    probe = Part("", "", "")
    _value(probe, holder, what)
    for part in parts:
        part.value_num, part.value_code, part.value_system, part.unit = (
            probe.value_num,
            probe.value_code,
            probe.value_system,
            probe.unit,
        )


# --- mappers ----------------------------------------------------------------------


def observation(r: dict[str, Any]) -> FactResource:
    parts = _require_code(r, "code", "Observation")
    _with_value(parts, r, "Observation")
    components = r.get("component")
    if isinstance(components, list):
        for number, component in enumerate(components, start=1):
            if not isinstance(component, dict):
                continue
            for system, code, display in _codings(component.get("code")):
                part = Part(FactElement.COMPONENT, system, code, display)
                _value(part, component, f"Observation.component[{number}]")
                parts.append(part)
    parts.extend(_reason_parts(r))
    start, end = _timing(r, "effective")
    return FactResource(
        kind=FactKind.OBSERVATION,
        subject=_subject(r, "Observation"),
        parts=parts,
        status=_status(r),
        category=_observation_category(r),
        start=start,
        end=end,
        recorded=when(r.get("issued"), "Observation.issued"),
        negated=_negated(r),
    )


def condition(r: dict[str, Any]) -> FactResource:
    parts = _require_code(r, "code", "Condition")
    # The body site (laterality of a mastectomy...): measures ask for it. (caregaps)
    sites = r.get("bodySite")
    for concept in sites if isinstance(sites, list) else []:
        parts.extend(Part(FactElement.BODY_SITE, s, c, d) for s, c, d in _codings(concept))
    verification = _first_code(r.get("verificationStatus"))
    for part in parts:
        part.value_code = verification
    start, _ = _timing(r, "onset")
    _, end = _timing(r, "abatement")
    recorded = when(r.get("recordedDate"), "Condition.recordedDate")
    return FactResource(
        kind=FactKind.CONDITION,
        subject=_subject(r, "Condition"),
        parts=parts,
        status=_first_code(r.get("clinicalStatus")),
        category=_category(r),
        start=start or recorded,
        end=end,
        recorded=recorded,
    )


def allergy(r: dict[str, Any]) -> FactResource:
    parts = _require_code(r, "code", "AllergyIntolerance")
    verification = _first_code(r.get("verificationStatus"))
    for part in parts:
        part.value_code = verification
    start, _ = _timing(r, "onset")
    recorded = when(r.get("recordedDate"), "AllergyIntolerance.recordedDate")
    category = r.get("category")
    return FactResource(
        kind=FactKind.ALLERGY,
        subject=_subject(r, "AllergyIntolerance", "patient"),
        parts=parts,
        status=_first_code(r.get("clinicalStatus")),
        category=category[0]
        if isinstance(category, list) and category and isinstance(category[0], str)
        else "",
        start=start or recorded,
        recorded=recorded,
    )


def procedure(r: dict[str, Any]) -> FactResource:
    parts = _require_code(r, "code", "Procedure")
    # reasonCode too: measures ask why a procedure was done (a BMI follow-up "for
    # overweight"), as they ask why one was not (statusReason). (caregaps)
    parts.extend(_reason_parts(r, "statusReason", "reasonCode"))
    start, end = _timing(r, "performed")
    return FactResource(
        kind=FactKind.PROCEDURE,
        subject=_subject(r, "Procedure"),
        parts=parts,
        status=_status(r),
        category=_category(r),
        start=start,
        end=end,
        negated=_negated(r),
    )


def immunization(r: dict[str, Any]) -> FactResource:
    parts = _require_code(r, "vaccineCode", "Immunization")
    parts.extend(_reason_parts(r, "statusReason"))
    start, end = _timing(r, "occurrence")
    return FactResource(
        kind=FactKind.IMMUNIZATION,
        subject=_subject(r, "Immunization", "patient"),
        parts=parts,
        status=_status(r),
        start=start,
        end=end,
        recorded=when(r.get("recorded"), "Immunization.recorded"),
        negated=_negated(r),
    )


def _medication_parts(r: dict[str, Any], rtype: str, medications: MedicationIndex) -> list[Part]:
    parts = _code_parts(r, "medicationCodeableConcept")
    if parts:
        return parts
    reference = r.get("medicationReference")
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
        concept = medications.lookup(r, reference["reference"])
        parts = [Part(FactElement.CODE, s, c, d) for s, c, d in _codings(concept)]
        if parts:
            return parts
        raise Reject(f"{rtype}: medicationReference names a Medication careloop has not seen")
    raise Reject(f"{rtype}: no medication code")


def _dosage_bounds(r: dict[str, Any]) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    dosages = r.get("dosageInstruction")
    if isinstance(dosages, list) and dosages and isinstance(dosages[0], dict):
        timing = dosages[0].get("timing")
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
        if bounds is not None:
            return _period(bounds, "MedicationRequest.dosageInstruction.timing.repeat.boundsPeriod")
    return None, None


SUPPLY_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7}


def _supply_end(r: dict[str, Any], start: datetime.datetime) -> datetime.datetime | None:
    """The last day a request's supply covers: start + days supplied x (1 + refills) - 1
    (CumulativeMedicationDuration's medicationRequestPeriod(), from
    dispenseRequest.expectedSupplyDuration). (caregaps)"""
    dispense = r.get("dispenseRequest")
    duration = dispense.get("expectedSupplyDuration") if isinstance(dispense, dict) else None
    if not isinstance(duration, dict):
        return None
    value, unit = duration.get("value"), duration.get("code") or duration.get("unit")
    factor = SUPPLY_DAYS.get(unit) if isinstance(unit, str) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or factor is None:
        return None
    refills = dispense.get("numberOfRepeatsAllowed") if isinstance(dispense, dict) else None
    repeats = refills if isinstance(refills, int) and not isinstance(refills, bool) else 0
    days = value * factor * (1 + repeats)
    if days < 1 or days > 36_600:
        return None
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return day + datetime.timedelta(days=days - 1)


def medication_request(r: dict[str, Any], medications: MedicationIndex) -> FactResource:
    parts = _medication_parts(r, "MedicationRequest", medications)
    parts.extend(_reason_parts(r, "reasonCode"))
    authored = when(r.get("authoredOn"), "MedicationRequest.authoredOn")
    start, end = _dosage_bounds(r)
    begins = start or authored
    if end is None and begins is not None:
        end = _supply_end(r, begins)
    intent = r.get("intent")
    return FactResource(
        kind=FactKind.MEDICATION,
        subject=_subject(r, "MedicationRequest"),
        parts=parts,
        status=_status(r),
        category=_category(r),
        start=start or authored,
        end=end,
        recorded=authored,
        negated=_negated(r),
        intent=intent[:16] if isinstance(intent, str) else "",
    )


def medication_dispense(r: dict[str, Any], medications: MedicationIndex) -> FactResource:
    parts = _medication_parts(r, "MedicationDispense", medications)
    handed = when(r.get("whenHandedOver"), "MedicationDispense.whenHandedOver")
    prepared = when(r.get("whenPrepared"), "MedicationDispense.whenPrepared")
    return FactResource(
        kind=FactKind.MEDICATION,
        subject=_subject(r, "MedicationDispense"),
        parts=parts,
        status=_status(r),
        category=_category(r),
        start=handed or prepared,
        end=handed or prepared,
        recorded=prepared,
        negated=_negated(r),
    )


def medication_statement(r: dict[str, Any], medications: MedicationIndex) -> FactResource:
    parts = _medication_parts(r, "MedicationStatement", medications)
    start, end = _timing(r, "effective")
    return FactResource(
        kind=FactKind.MEDICATION,
        subject=_subject(r, "MedicationStatement"),
        parts=parts,
        status=_status(r),
        category=_category(r),
        start=start,
        end=end,
        recorded=when(r.get("dateAsserted"), "MedicationStatement.dateAsserted"),
        negated=_negated(r),
    )


def encounter(r: dict[str, Any]) -> FactResource:
    types = r.get("type")
    parts = [
        Part(FactElement.CODE, system, code, display)
        for concept in (types if isinstance(types, list) else [])
        for system, code, display in _codings(concept)
    ]
    klass = r.get("class")
    if isinstance(klass, dict) and isinstance(klass.get("code"), str):
        system = klass.get("system")
        parts.append(
            Part(
                FactElement.CLASS,
                system if isinstance(system, str) else "",
                klass["code"][:MAX_CODE],
            )
        )
    hospitalization = r.get("hospitalization")
    if isinstance(hospitalization, dict):
        for system, code, display in _codings(hospitalization.get("dischargeDisposition")):
            parts.append(Part(FactElement.DISPOSITION, system, code, display))
    parts.extend(_reason_parts(r, "reasonCode"))
    if not parts:
        raise Reject("Encounter: neither type nor class has a code")
    start, end = _period(r["period"], "Encounter.period") if "period" in r else (None, None)
    return FactResource(
        kind=FactKind.ENCOUNTER,
        subject=_subject(r, "Encounter"),
        parts=parts,
        status=_status(r),
        category=klass.get("code", "")[:40]
        if isinstance(klass, dict) and isinstance(klass.get("code"), str)
        else "",
        start=start,
        end=end,
    )


def diagnostic_report(r: dict[str, Any]) -> FactResource:
    parts = _require_code(r, "code", "DiagnosticReport")
    start, end = _timing(r, "effective")
    return FactResource(
        kind=FactKind.DIAGNOSTIC_REPORT,
        subject=_subject(r, "DiagnosticReport"),
        parts=parts,
        status=_status(r),
        category=_category(r),
        start=start,
        end=end,
        recorded=when(r.get("issued"), "DiagnosticReport.issued"),
    )


def _category_parts(r: dict[str, Any]) -> list[Part]:
    categories = r.get("category")
    return [
        Part(FactElement.CODE, system, code, display)
        for concept in (categories if isinstance(categories, list) else [])
        for system, code, display in _codings(concept)
    ]


def _request(r: dict[str, Any], kind: str, rtype: str, parts: list[Part]) -> FactResource:
    """A ServiceRequest or DeviceRequest: ordered when authored, for when it occurs."""
    parts.extend(_reason_parts(r, "reasonCode"))
    authored = when(r.get("authoredOn"), f"{rtype}.authoredOn")
    start, end = _timing(r, "occurrence")
    intent = r.get("intent")
    return FactResource(
        kind=kind,
        subject=_subject(r, rtype),
        parts=parts,
        status=_status(r),
        category=_category(r),
        start=start or authored,
        end=end,
        recorded=authored,
        negated=_negated(r),
        intent=intent[:16] if isinstance(intent, str) else "",
    )


def service_request(r: dict[str, Any]) -> FactResource:
    # A referral is often coded by its category only ("Patient referral"), its code text.
    parts = _code_parts(r, "code") or _category_parts(r)
    if not parts:
        raise Reject("ServiceRequest: neither code nor category has a coding with a code")
    return _request(r, FactKind.SERVICE_REQUEST, "ServiceRequest", parts)


def device_request(r: dict[str, Any]) -> FactResource:
    parts = _require_code(r, "codeCodeableConcept", "DeviceRequest")
    return _request(r, FactKind.DEVICE_REQUEST, "DeviceRequest", parts)


def care_plan(r: dict[str, Any]) -> FactResource:
    parts = _category_parts(r)
    if not parts:
        raise Reject("CarePlan: category has no coding with a code")
    start, end = _period(r["period"], "CarePlan.period") if "period" in r else (None, None)
    intent = r.get("intent")
    return FactResource(
        kind=FactKind.CARE_PLAN,
        subject=_subject(r, "CarePlan"),
        parts=parts,
        status=_status(r),
        start=start,
        end=end,
        recorded=when(r.get("created"), "CarePlan.created"),
        intent=intent[:16] if isinstance(intent, str) else "",
    )


def concept_codes(concept: Any) -> list[list[str]]:
    """A CodeableConcept's codings as [[system, code, display], ...]."""
    return [list(coding) for coding in _codings(concept)]


class MedicationIndex:
    """The codes of Medication resources (contained ones are looked up in place), so
    that a request naming its drug by reference gets the drug's codes. `fallback`
    looks up a Medication an earlier import brought."""

    def __init__(self, fallback: Callable[[str], list[list[str]] | None] | None = None) -> None:
        self._by_id: dict[str, Any] = {}
        self._fallback = fallback

    def remember(self, resource: dict[str, Any]) -> None:
        rid = resource.get("id")
        if isinstance(rid, str):
            self._by_id[rid] = resource.get("code")

    def lookup(self, holder: dict[str, Any], reference: str) -> Any:
        if reference.startswith("#"):
            contained_list = holder.get("contained")
            for contained in contained_list if isinstance(contained_list, list) else []:
                if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                    return contained.get("code")
            return None
        rid = reference.rstrip("/").rpartition("/")[2]
        if reference.startswith("urn:uuid:"):
            rid = reference[9:]
        if rid in self._by_id:
            return self._by_id[rid]
        codes = self._fallback(rid) if self._fallback is not None else None
        if codes:
            return {"coding": [{"system": s, "code": c, "display": d} for s, c, d in codes]}
        return None


Mapper = Callable[[dict[str, Any], MedicationIndex], FactResource]


def _plain(mapper: Callable[[dict[str, Any]], FactResource]) -> Mapper:
    return lambda resource, _medications: mapper(resource)


FACT_MAPPERS: dict[str, Mapper] = {
    "Observation": _plain(observation),
    "Condition": _plain(condition),
    "AllergyIntolerance": _plain(allergy),
    "Procedure": _plain(procedure),
    "Immunization": _plain(immunization),
    "MedicationRequest": medication_request,
    "MedicationDispense": medication_dispense,
    "MedicationStatement": medication_statement,
    "Encounter": _plain(encounter),
    "DiagnosticReport": _plain(diagnostic_report),
    "ServiceRequest": _plain(service_request),
    "DeviceRequest": _plain(device_request),
    "CarePlan": _plain(care_plan),
}
