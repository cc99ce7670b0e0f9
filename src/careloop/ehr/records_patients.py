"""Record handlers for what is about one patient: Patient, RelatedPerson, CareTeam,
Coverage and Consent (US Core R4 in, careloop rows out).

Each handler reads only the elements it maps; anything else in the resource is
ignored. A rejection's message names the resource type and the missing element, never
a value.
"""

from __future__ import annotations

import uuid
from typing import Any

from careloop.consent.ledger import consent_record
from careloop.consent.models import CaptureMethod, ConsentKind, ConsentRecord, ConsentStatus
from careloop.core.clock import now
from careloop.core.practice import practice_today
from careloop.ehr import fhir_values as fv
from careloop.ehr.handlers import (
    RecordContext,
    RecordResult,
    Reject,
    WaitForPatient,
    record_handler,
    subject_id,
)
from careloop.ehr.identity import (
    IncomingContact,
    IncomingIdentifier,
    IncomingPatient,
    UpsertOutcome,
    patient_upsert,
)
from careloop.patients.models import (
    Coverage,
    CoverageStatus,
    IdentifierKind,
    Patient,
    PatientIdentifier,
    PatientRelationship,
    PayerCategory,
    RelationshipCode,
    TimelineKind,
)
from careloop.patients.timeline import timeline_add
from careloop.security.fields import blind_value

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# Government ids careloop has no use for: not kept (minimum necessary).
UNKEPT_IDENTIFIER_TYPES = frozenset({"SS", "SB", "DL", "PPN", "TAX", "NIIP", "CZ"})
UNKEPT_IDENTIFIER_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/us-ssn"})
SEXES = {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}
PHONE_USES = {"mobile": "mobile", "home": "home", "work": "work"}


# --- Patient ----------------------------------------------------------------------------


@record_handler("Patient")
def patient_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    source_id = fv.text(resource.get("id"))
    if not source_id:
        raise Reject("Patient: id missing")
    # The import keeps the source record (with its version); identity needs only the
    # patient it holds for this id, which is the held version's target.
    result = patient_upsert(
        source=ctx.source,
        source_patient_id=source_id,
        incoming=incoming_patient(resource),
        caller_remembers=True,
        held_patient_id=target_id,
    )
    return RecordResult(
        result.patient_id, result.patient_id, changed=result.outcome != UpsertOutcome.UNCHANGED
    )


def incoming_patient(resource: dict[str, Any]) -> IncomingPatient:
    """A US Core Patient as careloop's feeds describe a patient; `Reject` when unusable."""
    birth_date = fv.full_date(resource.get("birthDate"))
    if birth_date is None:
        missing = "missing" if not resource.get("birthDate") else "not a full date"
        raise Reject(f"Patient: birthDate {missing}")
    name = fv.human_name(resource)
    given, family = fv.given_and_family(name) if name else ("", "")
    if not (given or family):
        raise Reject("Patient: name missing")
    address = _home_address(resource)
    deceased_on = fv.full_date(resource.get("deceasedDateTime"))
    return IncomingPatient(
        given_name=given,
        family_name=family,
        birth_date=birth_date,
        sex=SEXES.get(fv.text(resource.get("gender")), "unknown"),
        identifiers=tuple(_identifiers(resource)),
        contacts=tuple(_contacts(resource)),
        address_line=" ".join(fv.text(x) for x in address.get("line") or [] if fv.text(x)),
        city=fv.text(address.get("city")),
        state=fv.text(address.get("state")),
        postal_code=fv.text(address.get("postalCode")),
        preferred_language=_language(resource),
        deceased_on=deceased_on,
        deceased=deceased_on is not None or resource.get("deceasedBoolean") is True,
    )


def _identifiers(resource: dict[str, Any]) -> list[IncomingIdentifier]:
    found = []
    for ident in fv.items(resource, "identifier"):
        system, value = fv.text(ident.get("system")), fv.text(ident.get("value"))
        type_code = fv.code_in(ident.get("type"), V2_0203)
        if not (system and value) or ident.get("use") == "old":
            continue
        if type_code in UNKEPT_IDENTIFIER_TYPES or system in UNKEPT_IDENTIFIER_SYSTEMS:
            continue
        kind = IdentifierKind.MRN if type_code == "MR" else IdentifierKind.EXTERNAL
        found.append(IncomingIdentifier(system=system, value=value, kind=kind))
    return found


def _contacts(resource: dict[str, Any]) -> list[IncomingContact]:
    today = practice_today()
    found = []
    telecoms = sorted(
        fv.items(resource, "telecom"),
        key=lambda t: rank if isinstance(rank := t.get("rank"), int) else 1_000,
    )
    for telecom in telecoms:
        system, value = telecom.get("system"), fv.text(telecom.get("value"))
        use = fv.text(telecom.get("use"))
        if system not in ("phone", "sms", "email") or not value or use in ("old", "temp"):
            continue
        if not fv.in_force(telecom, today):
            continue
        if system == "email":
            found.append(IncomingContact(system="email", value=value, use="home"))
        else:
            # An "sms" contact point is a mobile by definition.
            mobile = system == "sms" or use == "mobile"
            found.append(
                IncomingContact(
                    system="phone",
                    value=value,
                    use="mobile" if mobile else PHONE_USES.get(use, "home"),
                )
            )
    return found


def _home_address(resource: dict[str, Any]) -> dict[str, Any]:
    today = practice_today()
    usable = [
        a
        for a in fv.items(resource, "address")
        if a.get("use") not in ("old", "billing", "work") and fv.in_force(a, today)
    ]
    for address in usable:
        if address.get("use") == "home":
            return address
    return usable[0] if usable else {}


def _language(resource: dict[str, Any]) -> str:
    communications = fv.items(resource, "communication")
    preferred = [c for c in communications if c.get("preferred") is True] + communications
    for communication in preferred:
        for system, code, _ in fv.codings(communication.get("language")):
            if system in ("urn:ietf:bcp:47", ""):
                return code
    return ""


# --- RelatedPerson and CareTeam ---------------------------------------------------------

RELATIONSHIPS = {
    **dict.fromkeys(("MTH", "FTH", "PRN", "NMTH", "NFTH", "STPPRN", "PAR"), "parent"),
    **dict.fromkeys(("GUARD", "POWATT", "DPOWATT", "HPOWATT"), "guardian"),
    **dict.fromkeys(("SPS", "HUSB", "WIFE", "DOMPART", "SIGOTHR"), "spouse"),
    **dict.fromkeys(("CHILD", "SON", "DAU", "CHLDADOPT", "CHLDFOST", "STPCHLD"), "child"),
    **dict.fromkeys(("C", "CAREGIVER", "N"), "caregiver"),
}


@record_handler("RelatedPerson")
def related_person_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    """A relationship between two careloop patients; anyone else is only remembered.

    careloop's relationships carry proxy permissions that only staff grant, so an
    outsider's name from the EHR is not copied in: the source record remains, and staff
    add the caregiver when the patient asks.
    """
    source_patient = subject_id(resource, "patient")
    if source_patient is None:
        raise Reject("RelatedPerson: patient missing")
    person = _patient_by_identifier(resource)
    patient_id = ctx.patient_for(source_patient)
    if person is None:
        return RecordResult(None, patient_id)
    if patient_id is None:
        raise WaitForPatient(source_patient)
    patient = live_patient(patient_id)
    if patient.pk == person:
        return RecordResult(None, patient.pk)
    return _relationship(resource, patient, person, target_id)


def _patient_by_identifier(resource: dict[str, Any]) -> uuid.UUID | None:
    for ident in _identifiers(resource):
        index = blind_value("identifier", ident.value)
        found = (
            PatientIdentifier.objects.filter(
                system=ident.system, value_bidx=index, patient__merged_into__isnull=True
            )
            .values_list("patient_id", flat=True)
            .first()
        )
        if found is not None:
            return found
    return None


def _relationship(
    resource: dict[str, Any], patient: Patient, person: uuid.UUID, target_id: uuid.UUID | None
) -> RecordResult:
    code = "other"
    for _, found, _ in fv.codings(resource.get("relationship")):
        code = RELATIONSHIPS.get(found, code)
    start, end = fv.period(resource)
    period_start = fv.full_date(start) or practice_today()
    period_end = fv.full_date(end)
    if resource.get("active") is False and period_end is None:
        period_end = practice_today()
    if period_end is not None and period_end < period_start:
        raise Reject("RelatedPerson: period ends before it starts")
    row = (
        PatientRelationship.objects.filter(pk=target_id, patient=patient).first()
        if target_id
        else None
    )
    values = {"related_patient_id": person, "code": code, "period_end": period_end}
    if row is not None:
        if all(getattr(row, k) == v for k, v in values.items()):
            return RecordResult(row.pk, patient.pk, changed=False)
        for key, value in values.items():
            setattr(row, key, value)
        row.save(update_fields=["related_patient", "code", "period_end"])
    else:
        row = PatientRelationship.objects.create(
            patient=patient, period_start=period_start, created_at=now(), **values
        )
    label = RelationshipCode(code).label.lower()
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary=f"Relationship from the EHR: {label}",
        ref_type="relationship",
        ref_id=str(row.pk),
    )
    return RecordResult(row.pk, patient.pk)


@record_handler("CareTeam")
def care_team_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    """Remembered only: an EHR care team names practitioners and organisations, while
    careloop's care team is its own staff (primary provider, coordinator), which staff
    assign."""
    source_patient = subject_id(resource)
    return RecordResult(None, ctx.patient_for(source_patient) if source_patient else None)


def live_patient(patient_id: uuid.UUID) -> Patient:
    """The patient a source id resolved to, or the record it was merged into."""
    patient = Patient.objects.only("id", "merged_into").get(pk=patient_id)
    while patient.merged_into_id is not None:
        patient = Patient.objects.only("id", "merged_into").get(pk=patient.merged_into_id)
    return patient


def _patient_of(ctx: RecordContext, resource: dict[str, Any], key: str) -> Patient:
    """The careloop patient a resource is about; `WaitForPatient` until it arrives."""
    source_patient = subject_id(resource, key)
    if source_patient is None:
        raise Reject(f"{resource.get('resourceType')}: {key} missing")
    patient_id = ctx.patient_for(source_patient)
    if patient_id is None:
        raise WaitForPatient(source_patient)
    return live_patient(patient_id)


# --- Coverage ---------------------------------------------------------------------------

SOPT = ("https://nahdo.org/sopt", "urn:oid:2.16.840.1.113883.3.221.5")
# Source of Payment Typology: the first digit is the payer family.
SOPT_FAMILIES = {
    "1": PayerCategory.MEDICARE,
    "2": PayerCategory.MEDICAID,
    "5": PayerCategory.COMMERCIAL,
    "6": PayerCategory.COMMERCIAL,
    "7": PayerCategory.COMMERCIAL,
    "8": PayerCategory.SELF_PAY,
}
COVERAGE_STATUSES = {
    "active": CoverageStatus.ACTIVE,
    "cancelled": CoverageStatus.CANCELLED,
    "entered-in-error": CoverageStatus.ENTERED_IN_ERROR,
}


def _payer_category(concept: Any) -> PayerCategory:
    for system, code, display in fv.codings(concept):
        if system in SOPT:
            return SOPT_FAMILIES.get(code[:1], PayerCategory.OTHER)
        if code == "pay" or code == "SELFPAY":
            return PayerCategory.SELF_PAY
        words = f"{code} {display}".lower()
        for word, category in (
            ("medicare", PayerCategory.MEDICARE),
            ("medicaid", PayerCategory.MEDICAID),
        ):
            if word in words:
                return category
    return PayerCategory.OTHER if fv.concept_text(concept) else PayerCategory.COMMERCIAL


def _payer_name(resource: dict[str, Any]) -> str:
    """The insurer's name. Never a payor that is a person: their name is class I."""
    for payor in fv.items(resource, "payor"):
        if fv.reference_type(payor) in ("Patient", "RelatedPerson"):
            continue
        if fv.text(payor.get("display")):
            return fv.text(payor.get("display"))[:120]
    return (fv.concept_text(resource.get("type")) or "Insurance (from the EHR)")[:120]


def _plan_name(resource: dict[str, Any]) -> str:
    for each in fv.items(resource, "class"):
        if any(code == "plan" for _, code, _ in fv.codings(each.get("type"))):
            return fv.text(each.get("name"))[:120]
    return ""


def _member_id(resource: dict[str, Any]) -> str | None:
    if fv.text(resource.get("subscriberId")):
        return fv.text(resource.get("subscriberId"))
    for ident in fv.items(resource, "identifier"):
        if fv.text(ident.get("value")):
            return fv.text(ident.get("value"))
    return None


def coverage_values(resource: dict[str, Any], patient_id: uuid.UUID) -> dict[str, Any] | None:
    """A Coverage's careloop columns; None when it is not in force (a draft, unknown)."""
    status = COVERAGE_STATUSES.get(fv.text(resource.get("status")))
    if status is None:
        return None
    start, end = fv.period(resource)
    values: dict[str, Any] = {
        "patient_id": patient_id,
        "payer_category": _payer_category(resource.get("type")),
        "payer_name": _payer_name(resource),
        "plan_name": _plan_name(resource),
        "member_id": _member_id(resource),
        "subscriber_relationship": (
            next((c for _, c, _ in fv.codings(resource.get("relationship"))), "self")[:16]
        ),
        "period_start": fv.full_date(start),
        "period_end": fv.full_date(end),
        "status": status,
        "rank": min(max(resource.get("order") or 1, 1), 32767)
        if isinstance(resource.get("order"), int)
        else 1,
    }
    if (
        values["period_start"]
        and values["period_end"]
        and values["period_end"] < values["period_start"]
    ):
        raise Reject("Coverage: period ends before it starts")
    return values


def coverage_summary(coverage: Coverage) -> str:
    return (
        f"Coverage from the EHR: {PayerCategory(coverage.payer_category).label}, "
        f"{CoverageStatus(coverage.status).label.lower()}"
    )


@record_handler("Coverage")
def coverage_record(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    patient = _patient_of(ctx, resource, "beneficiary")
    values = coverage_values(resource, patient.pk)
    if values is None:
        # A draft (or unknown status) is not in force: remembered, not shown.
        return RecordResult(target_id, patient.pk, changed=False)
    coverage = Coverage.objects.filter(pk=target_id).first() if target_id else None
    if coverage is not None and all(getattr(coverage, k) == v for k, v in values.items()):
        return RecordResult(coverage.pk, patient.pk, changed=False)
    coverage = coverage or Coverage(id=uuid.uuid4())
    for key, value in values.items():
        setattr(coverage, key, value)
    coverage.save()  # the whole row: the member id is sealed again
    timeline_add(
        patient=patient,
        kind=TimelineKind.PROFILE,
        summary=coverage_summary(coverage),
        ref_type="coverage",
        ref_id=str(coverage.pk),
    )
    return RecordResult(coverage.pk, patient.pk)


# --- Consent ----------------------------------------------------------------------------

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
# LOINC "Privacy policy acknowledgment Document": the Notice of Privacy Practices.
NPP_ACKNOWLEDGEMENT = "57016-8"


def _consent_kind(resource: dict[str, Any]) -> ConsentKind | None:
    """The ledger kind when the mapping is clear; None for anything else (remembered)."""
    scope = fv.code_in(resource.get("scope"), CONSENT_SCOPE)
    if scope == "treatment":
        return ConsentKind.TREATMENT
    if scope == "research":
        return ConsentKind.RESEARCH
    categories = {
        code for system, code, _ in fv.codings(resource.get("category")) if system == LOINC
    }
    if scope == "patient-privacy" and NPP_ACKNOWLEDGEMENT in categories:
        return ConsentKind.NPP_ACK
    return None


def _consent_status(resource: dict[str, Any]) -> ConsentStatus | None:
    status = resource.get("status")
    provision = resource.get("provision")
    denied = isinstance(provision, dict) and provision.get("type") == "deny"
    if status == "active":
        return ConsentStatus.DENIED if denied else ConsentStatus.GRANTED
    if status == "rejected":
        return ConsentStatus.DENIED
    if status == "inactive":
        return ConsentStatus.REVOKED
    return None  # draft, proposed, entered-in-error: nothing the ledger can say


@record_handler("Consent")
def consent_record_handler(
    ctx: RecordContext, resource: dict[str, Any], target_id: uuid.UUID | None
) -> RecordResult:
    """A treatment, research or privacy-notice consent goes to the consent ledger.

    The ledger is append-only: a newer version that says something else is a new
    record (the newest holds); the same answer again changes nothing.
    """
    patient = _patient_of(ctx, resource, "patient")
    kind, status = _consent_kind(resource), _consent_status(resource)
    if kind is None or status is None:
        return RecordResult(target_id, patient.pk, changed=False)
    captured_at = fv.instant(resource.get("dateTime")) or now()
    provision = resource.get("provision")
    _, end = fv.period(provision) if isinstance(provision, dict) else (None, None)
    period_end = fv.instant(end)
    if period_end is not None and period_end <= captured_at:
        raise Reject("Consent: provision period ends before the consent was given")
    held = (
        ConsentRecord.objects.filter(pk=target_id, patient=patient).first() if target_id else None
    )
    if held is not None and (held.kind, held.status, held.captured_at, held.period_end) == (
        kind,
        status,
        captured_at,
        period_end,
    ):
        return RecordResult(held.pk, patient.pk, changed=False)
    record = consent_record(
        patient=patient,
        kind=kind,
        status=status,
        capture_method=CaptureMethod.IMPORTED,
        captured_at=captured_at,
        period_end=period_end,
    )
    return RecordResult(record.pk, patient.pk)
