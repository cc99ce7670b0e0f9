"""The shared CQL libraries, written once: Status, Hospice, PalliativeCare,
AdvancedIllnessandFrailty and AdultOutpatientEncounters (QI-Core 6 / eCQM 2025-2026).

Each definition keeps the CQL name it comes from, so a measure file reads like its
CQL and a reviewer can hold the two side by side.
"""

from __future__ import annotations

from collections.abc import Callable

from careloop.caregaps.dsl import (
    LOINC,
    MP,
    SNOMED,
    TRUE,
    Code,
    Cond,
    Facts,
    Row,
    Span,
    ValueSetRef,
    age_between,
    exists,
    retrieve,
    valueset,
    years_before_start,
)
from careloop.clinical.models import FactKind

ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
RESULT_STATUSES = ("final", "amended", "corrected")

# --- retrieves by resource (QI-Core profiles narrow them further) -----------------------


def encounter(*refs: ValueSetRef | Code) -> Facts:
    return retrieve(FactKind.ENCOUNTER, *refs)


def condition(*refs: ValueSetRef | Code) -> Facts:
    """[ConditionProblemsHealthConcerns: X] union [ConditionEncounterDiagnosis: X]."""
    return retrieve(FactKind.CONDITION, *refs)


def procedure(*refs: ValueSetRef | Code) -> Facts:
    return retrieve(FactKind.PROCEDURE, *refs)


def observation(*refs: ValueSetRef | Code) -> Facts:
    return retrieve(FactKind.OBSERVATION, *refs)


def service_request(*refs: ValueSetRef | Code) -> Facts:
    return retrieve(FactKind.SERVICE_REQUEST, *refs)


def medication_request(*refs: ValueSetRef | Code) -> Facts:
    return retrieve(FactKind.MEDICATION, *refs, resource_types=("MedicationRequest",))


def device_request(*refs: ValueSetRef | Code) -> Facts:
    return retrieve(FactKind.DEVICE_REQUEST, *refs)


def immunization(*refs: ValueSetRef | Code) -> Facts:
    return retrieve(FactKind.IMMUNIZATION, *refs)


# --- Status -------------------------------------------------------------------------------


def verified(c: Row) -> Cond:
    return c.verified()


def is_encounter_performed(e: Row) -> Cond:
    return e.status_in("finished")


def is_procedure_performed(p: Row) -> Cond:
    return p.status_in("completed")


is_intervention_performed = is_procedure_performed


def is_assessment_performed(o: Row) -> Cond:
    """Status.isAssessmentPerformed takes ObservationScreeningAssessment: the profile
    (category survey) is part of the rule — one official CMS138 case turns on it."""
    return o.status_in(*RESULT_STATUSES) & o.category_is("survey")


def is_laboratory_test_performed(o: Row) -> Cond:
    return o.status_in(*RESULT_STATUSES)


def is_diagnostic_study_performed(o: Row) -> Cond:
    return o.status_in(*RESULT_STATUSES) & o.category_is("imaging")


def is_physical_exam_performed(o: Row) -> Cond:
    return o.status_in(*RESULT_STATUSES) & o.category_is("exam")


def is_symptom(o: Row) -> Cond:
    return o.status_in("preliminary", *RESULT_STATUSES)


def is_order(r: Row) -> Cond:
    """isInterventionOrder / isDiagnosticStudyOrder / isLaboratoryTestOrder /
    isDeviceOrderPersonalUseDevices / isMedicationOrder: the same rule."""
    return r.status_in("active", "completed") & r.intent_in(*ORDER_INTENTS)


def is_medication_active(r: Row) -> Cond:
    return r.status_in("active") & r.intent_in(*ORDER_INTENTS)


def is_immunization_administered(i: Row) -> Cond:
    return i.status_in("completed")


# --- AdultOutpatientEncounters ------------------------------------------------------------

OFFICE_VISIT = valueset("Office Visit", "2.16.840.1.113883.3.464.1003.101.12.1001")
ANNUAL_WELLNESS_VISIT = valueset("Annual Wellness Visit", "2.16.840.1.113883.3.526.3.1240")
PREVENTIVE_ESTABLISHED_18_UP = valueset(
    "Preventive Care Services Established Office Visit, 18 and Up",
    "2.16.840.1.113883.3.464.1003.101.12.1025",
)
PREVENTIVE_INITIAL_18_UP = valueset(
    "Preventive Care Services Initial Office Visit, 18 and Up",
    "2.16.840.1.113883.3.464.1003.101.12.1023",
)
HOME_HEALTHCARE = valueset("Home Healthcare Services", "2.16.840.1.113883.3.464.1003.101.12.1016")
VIRTUAL_ENCOUNTER = valueset("Virtual Encounter", "2.16.840.1.113883.3.464.1003.101.12.1089")
TELEPHONE_VISITS = valueset("Telephone Visits", "2.16.840.1.113883.3.464.1003.101.12.1080")

QUALIFYING_ENCOUNTERS = encounter(
    OFFICE_VISIT,
    ANNUAL_WELLNESS_VISIT,
    PREVENTIVE_ESTABLISHED_18_UP,
    PREVENTIVE_INITIAL_18_UP,
    HOME_HEALTHCARE,
    VIRTUAL_ENCOUNTER,
    TELEPHONE_VISITS,
).where(is_encounter_performed, lambda e: e.period.during_day(MP))

# --- Hospice ------------------------------------------------------------------------------

ENCOUNTER_INPATIENT = valueset("Encounter Inpatient", "2.16.840.1.113883.3.666.5.307")
HOSPICE_CARE_AMBULATORY = valueset("Hospice Care Ambulatory", "2.16.840.1.113883.3.526.3.1584")
HOSPICE_ENCOUNTER = valueset("Hospice Encounter", "2.16.840.1.113883.3.464.1003.1003")
HOSPICE_DIAGNOSIS = valueset("Hospice Diagnosis", "2.16.840.1.113883.3.464.1003.1165")
DISCHARGE_TO_FACILITY_FOR_HOSPICE = Code("428371000124100", SNOMED)
DISCHARGE_TO_HOME_FOR_HOSPICE = Code("428361000124107", SNOMED)
HOSPICE_CARE_MDS = Code("45755-6", LOINC)
YES = Code("373066001", SNOMED)


def _has_hospice_services(
    *,
    encounter_performed: Callable[[Row], Cond],
    assessment: Callable[[Row], Cond],
    order: Callable[[Row], Cond],
    diagnosis: Callable[[Row], Cond],
) -> Cond:
    """Hospice."Has Hospice Services"; its versions differ in the Status functions."""
    return (
        exists(
            encounter(ENCOUNTER_INPATIENT).where(
                encounter_performed,
                lambda e: e.part(
                    "disposition",
                    DISCHARGE_TO_HOME_FOR_HOSPICE,
                    DISCHARGE_TO_FACILITY_FOR_HOSPICE,
                ),
                lambda e: e.period.ends_during_day(MP),
            )
        )
        | exists(
            encounter(HOSPICE_ENCOUNTER).where(
                encounter_performed, lambda e: e.period.overlaps_day(MP)
            )
        )
        | exists(
            observation(HOSPICE_CARE_MDS).where(
                assessment,
                lambda o: o.value_in(YES),
                lambda o: o.period.overlaps_day(MP),
            )
        )
        | exists(
            service_request(HOSPICE_CARE_AMBULATORY).where(
                order, lambda s: s.recorded.during_day(MP)
            )
        )
        | exists(
            procedure(HOSPICE_CARE_AMBULATORY).where(
                is_intervention_performed, lambda p: p.period.overlaps_day(MP)
            )
        )
        | exists(
            condition(HOSPICE_DIAGNOSIS).where(diagnosis, lambda c: c.prevalence.overlaps_day(MP))
        )
    )


# Hospice 6.18 (QI-Core 6, Status 1.15).
HAS_HOSPICE_SERVICES = _has_hospice_services(
    encounter_performed=is_encounter_performed,
    assessment=is_assessment_performed,
    order=is_order,
    diagnosis=verified,
)

# Hospice 6.12 (QI-Core 4.1.1, Status 1.8), which CMS117 still includes: a wider
# isEncounterPerformed, intent "order" only, a diagnosis without verification.
ENCOUNTER_PERFORMED_STATUSES_1_8 = ("finished", "arrived", "triaged", "in-progress", "onleave")
HAS_HOSPICE_SERVICES_6_12 = _has_hospice_services(
    encounter_performed=lambda e: e.status_in(*ENCOUNTER_PERFORMED_STATUSES_1_8),
    assessment=is_assessment_performed,
    order=lambda r: r.status_in("active", "completed") & r.intent_in("order"),
    diagnosis=lambda _c: TRUE,
)

# --- PalliativeCare -----------------------------------------------------------------------

PALLIATIVE_CARE_ENCOUNTER = valueset(
    "Palliative Care Encounter", "2.16.840.1.113883.3.464.1003.101.12.1090"
)
PALLIATIVE_CARE_INTERVENTION = valueset(
    "Palliative Care Intervention", "2.16.840.1.113883.3.464.1003.198.12.1135"
)
PALLIATIVE_CARE_DIAGNOSIS = valueset(
    "Palliative Care Diagnosis", "2.16.840.1.113883.3.464.1003.1167"
)
FACIT_PAL = Code("71007-9", LOINC)

HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD = (
    exists(
        observation(FACIT_PAL).where(is_assessment_performed, lambda o: o.period.overlaps_day(MP))
    )
    | exists(
        condition(PALLIATIVE_CARE_DIAGNOSIS).where(
            verified, lambda c: c.prevalence.overlaps_day(MP)
        )
    )
    | exists(
        encounter(PALLIATIVE_CARE_ENCOUNTER).where(
            is_encounter_performed, lambda e: e.period.overlaps_day(MP)
        )
    )
    | exists(
        procedure(PALLIATIVE_CARE_INTERVENTION).where(
            is_intervention_performed, lambda p: p.period.overlaps_day(MP)
        )
    )
)

# --- AdvancedIllnessandFrailty ------------------------------------------------------------

ADVANCED_ILLNESS = valueset("Advanced Illness", "2.16.840.1.113883.3.464.1003.110.12.1082")
DEMENTIA_MEDICATIONS = valueset("Dementia Medications", "2.16.840.1.113883.3.464.1003.196.12.1510")
FRAILTY_DEVICE = valueset("Frailty Device", "2.16.840.1.113883.3.464.1003.118.12.1300")
FRAILTY_DIAGNOSIS = valueset("Frailty Diagnosis", "2.16.840.1.113883.3.464.1003.113.12.1074")
FRAILTY_ENCOUNTER = valueset("Frailty Encounter", "2.16.840.1.113883.3.464.1003.101.12.1088")
FRAILTY_SYMPTOM = valueset("Frailty Symptom", "2.16.840.1.113883.3.464.1003.113.12.1075")
HOUSING_STATUS = Code("71802-3", LOINC)
LIVES_IN_NURSING_HOME = Code("160734000", SNOMED)
MEDICAL_EQUIPMENT_USED = Code("98181-1", LOINC)

YEAR_BEFORE_AND_DURING_MP = Span(years_before_start(1), MP.end)

HAS_CRITERIA_INDICATING_FRAILTY = (
    exists(device_request(FRAILTY_DEVICE).where(is_order, lambda d: d.recorded.during_day(MP)))
    | exists(
        observation(MEDICAL_EQUIPMENT_USED).where(
            is_assessment_performed,
            lambda o: o.value_in(FRAILTY_DEVICE),
            lambda o: o.period.ends_during_day(MP),
        )
    )
    | exists(condition(FRAILTY_DIAGNOSIS).where(verified, lambda c: c.prevalence.overlaps_day(MP)))
    | exists(
        encounter(FRAILTY_ENCOUNTER).where(
            is_encounter_performed, lambda e: e.period.overlaps_day(MP)
        )
    )
    | exists(observation(FRAILTY_SYMPTOM).where(is_symptom, lambda o: o.period.overlaps_day(MP)))
)

HAS_ADVANCED_ILLNESS_IN_YEAR_BEFORE_OR_DURING_MP = exists(
    condition(ADVANCED_ILLNESS).where(
        verified, lambda c: c.prevalence.starts_during_day(YEAR_BEFORE_AND_DURING_MP)
    )
)


def _medication_request_period_overlaps(span: Span) -> Facts:
    # medicationRequestPeriod(): [start, start + days supplied - 1]. The facts keep its
    # start (bounds start or authoredOn) and the bounds end; without a known end the
    # request counts from its start (see docs/caregaps.md, "What the facts lack").
    return medication_request(DEMENTIA_MEDICATIONS).where(
        is_medication_active,
        lambda m: m.start.during_day(span) | (~m.end.is_null() & m.period.overlaps_day(span)),
    )


HAS_DEMENTIA_MEDICATIONS_IN_YEAR_BEFORE_OR_DURING_MP = exists(
    _medication_request_period_overlaps(YEAR_BEFORE_AND_DURING_MP)
)

_ADVANCED_ILLNESS_OR_DEMENTIA = (
    HAS_ADVANCED_ILLNESS_IN_YEAR_BEFORE_OR_DURING_MP
    | HAS_DEMENTIA_MEDICATIONS_IN_YEAR_BEFORE_OR_DURING_MP
)

IS_AGE_66_OR_OLDER_WITH_ADVANCED_ILLNESS_AND_FRAILTY = (
    age_between(66, None) & HAS_CRITERIA_INDICATING_FRAILTY & _ADVANCED_ILLNESS_OR_DEMENTIA
)

IS_AGE_66_TO_80_WITH_ADVANCED_ILLNESS_AND_FRAILTY_OR_81_OR_OLDER_WITH_FRAILTY = (
    age_between(66, 80) & HAS_CRITERIA_INDICATING_FRAILTY & _ADVANCED_ILLNESS_OR_DEMENTIA
) | (age_between(81, None) & HAS_CRITERIA_INDICATING_FRAILTY)

_HOUSING_STATUS = observation(HOUSING_STATUS).where(
    is_assessment_performed, lambda o: o.period.ends_on_or_before(MP.end, day=True)
)

IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME = age_between(66, None) & exists(
    _HOUSING_STATUS.on_most_recent_day(lambda o: o.end).where(
        lambda o: o.value_in(LIVES_IN_NURSING_HOME)
    )
)

# --- exclusion reasons (the rolling status names why a patient is excluded) ---------------

HOSPICE = ("hospice", HAS_HOSPICE_SERVICES)
PALLIATIVE = ("palliative", HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD)
FRAILTY = (
    "frailty",
    IS_AGE_66_OR_OLDER_WITH_ADVANCED_ILLNESS_AND_FRAILTY
    | IS_AGE_66_TO_80_WITH_ADVANCED_ILLNESS_AND_FRAILTY_OR_81_OR_OLDER_WITH_FRAILTY,
)
NURSING_HOME = ("nursing_home", IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME)
