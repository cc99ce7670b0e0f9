"""CMS138 Preventive Care and Screening: Tobacco Use: Screening and Cessation
Intervention (PreventiveCareAndTobaccoUseScreeningAndCessationInterventionFHIR).

Three groups over one initial population: 1 screened; 2 tobacco users given a
cessation intervention; 3 screened, and given an intervention when a user.
"""

from __future__ import annotations

from careloop.caregaps.dsl import (
    CPT,
    ICD10CM,
    MP,
    Code,
    Span,
    age_between,
    count_at_least,
    exists,
    months_before_start,
    valueset,
)
from careloop.caregaps.library import (
    ANNUAL_WELLNESS_VISIT,
    HAS_HOSPICE_SERVICES,
    HOME_HEALTHCARE,
    HOSPICE,
    OFFICE_VISIT,
    PREVENTIVE_ESTABLISHED_18_UP,
    PREVENTIVE_INITIAL_18_UP,
    TELEPHONE_VISITS,
    VIRTUAL_ENCOUNTER,
    condition,
    encounter,
    is_assessment_performed,
    is_encounter_performed,
    is_intervention_performed,
    is_medication_active,
    is_order,
    medication_request,
    observation,
    procedure,
)
from careloop.caregaps.measure import Closing, Group, Measure

NUTRITION_SERVICES = valueset("Nutrition Services", "2.16.840.1.113883.3.464.1003.1006")
OCCUPATIONAL_THERAPY_EVALUATION = valueset(
    "Occupational Therapy Evaluation", "2.16.840.1.113883.3.526.3.1011"
)
OPHTHALMOLOGICAL_SERVICES = valueset("Ophthalmological Services", "2.16.840.1.113883.3.526.3.1285")
PHYSICAL_THERAPY_EVALUATION = valueset(
    "Physical Therapy Evaluation", "2.16.840.1.113883.3.526.3.1022"
)
PREVENTIVE_GROUP_COUNSELING = valueset(
    "Preventive Care Services Group Counseling", "2.16.840.1.113883.3.464.1003.101.12.1027"
)
PREVENTIVE_INDIVIDUAL_COUNSELING = valueset(
    "Preventive Care Services Individual Counseling", "2.16.840.1.113883.3.464.1003.101.12.1026"
)
PREVENTIVE_INITIAL_0_TO_17 = valueset(
    "Preventive Care Services, Initial Office Visit, 0 to 17",
    "2.16.840.1.113883.3.464.1003.101.12.1022",
)
PREVENTIVE_ESTABLISHED_0_TO_17 = valueset(
    "Preventive Care, Established Office Visit, 0 to 17", "2.16.840.1.113883.3.464.1003.101.12.1024"
)
PSYCH_VISIT_DIAGNOSTIC_EVALUATION = valueset(
    "Psych Visit Diagnostic Evaluation", "2.16.840.1.113883.3.526.3.1492"
)
PSYCH_VISIT_PSYCHOTHERAPY = valueset("Psych Visit Psychotherapy", "2.16.840.1.113883.3.526.3.1496")
PSYCHOANALYSIS = valueset("Psychoanalysis", "2.16.840.1.113883.3.526.3.1141")
SPEECH_AND_HEARING_EVALUATION = valueset(
    "Speech and Hearing Evaluation", "2.16.840.1.113883.3.526.3.1530"
)
TOBACCO_NON_USER = valueset("Tobacco Non User", "2.16.840.1.113883.3.526.3.1189")
TOBACCO_USE_CESSATION_COUNSELING = valueset(
    "Tobacco Use Cessation Counseling", "2.16.840.1.113883.3.526.3.509"
)
TOBACCO_USE_CESSATION_PHARMACOTHERAPY = valueset(
    "Tobacco Use Cessation Pharmacotherapy", "2.16.840.1.113883.3.526.3.1190"
)
TOBACCO_USE_SCREENING = valueset("Tobacco Use Screening", "2.16.840.1.113883.3.526.3.1278")
TOBACCO_USER = valueset("Tobacco User", "2.16.840.1.113883.3.526.3.1170")
HEALTH_BEHAVIOR_ASSESSMENT = Code("96156", CPT)
HEALTH_BEHAVIOR_INTERVENTION = Code("96158", CPT)
POSTOPERATIVE_FOLLOW_UP_VISIT = Code("99024", CPT)
TOBACCO_ABUSE_COUNSELING = Code("Z71.6", ICD10CM)
UNLISTED_PREVENTIVE_MEDICINE_SERVICE = Code("99429", CPT)

QUALIFYING_VISIT_DURING_MEASUREMENT_PERIOD = encounter(
    HEALTH_BEHAVIOR_INTERVENTION,
    HEALTH_BEHAVIOR_ASSESSMENT,
    HOME_HEALTHCARE,
    OCCUPATIONAL_THERAPY_EVALUATION,
    OFFICE_VISIT,
    OPHTHALMOLOGICAL_SERVICES,
    PHYSICAL_THERAPY_EVALUATION,
    PSYCH_VISIT_DIAGNOSTIC_EVALUATION,
    PSYCH_VISIT_PSYCHOTHERAPY,
    PSYCHOANALYSIS,
    SPEECH_AND_HEARING_EVALUATION,
    TELEPHONE_VISITS,
    VIRTUAL_ENCOUNTER,
).where(is_encounter_performed, lambda e: e.period.during_day(MP))

PREVENTIVE_VISIT_DURING_MEASUREMENT_PERIOD = encounter(
    ANNUAL_WELLNESS_VISIT,
    PREVENTIVE_ESTABLISHED_18_UP,
    PREVENTIVE_INITIAL_18_UP,
    PREVENTIVE_ESTABLISHED_0_TO_17,
    PREVENTIVE_INITIAL_0_TO_17,
    PREVENTIVE_GROUP_COUNSELING,
    PREVENTIVE_INDIVIDUAL_COUNSELING,
    UNLISTED_PREVENTIVE_MEDICINE_SERVICE,
    POSTOPERATIVE_FOLLOW_UP_VISIT,
    NUTRITION_SERVICES,
).where(is_encounter_performed, lambda e: e.period.during_day(MP))

INITIAL_POPULATION = age_between(12, None, at=MP.start) & (
    count_at_least(QUALIFYING_VISIT_DURING_MEASUREMENT_PERIOD, 2)
    | exists(PREVENTIVE_VISIT_DURING_MEASUREMENT_PERIOD)
)

MOST_RECENT_TOBACCO_USE_SCREENING = (
    observation(TOBACCO_USE_SCREENING)
    .where(is_assessment_performed, lambda o: o.period.during_day(MP))
    .most_recent(lambda o: o.start)
)
MOST_RECENT_TOBACCO_USE_SCREENING_INDICATES_TOBACCO_NON_USER = exists(
    MOST_RECENT_TOBACCO_USE_SCREENING.where(lambda o: o.value_in(TOBACCO_NON_USER))
)
MOST_RECENT_TOBACCO_USE_SCREENING_INDICATES_TOBACCO_USER = exists(
    MOST_RECENT_TOBACCO_USE_SCREENING.where(lambda o: o.value_in(TOBACCO_USER))
)

SIX_MONTHS_BEFORE_AND_DURING_MP = Span(months_before_start(6), MP.end)

TOBACCO_CESSATION_COUNSELING_GIVEN = exists(
    procedure(TOBACCO_USE_CESSATION_COUNSELING).where(
        is_intervention_performed, lambda p: p.period.during_day(SIX_MONTHS_BEFORE_AND_DURING_MP)
    )
) | exists(
    condition(TOBACCO_ABUSE_COUNSELING).where(
        lambda c: c.prevalence.starts_during_day(SIX_MONTHS_BEFORE_AND_DURING_MP)
    )
)
TOBACCO_CESSATION_PHARMACOTHERAPY_ORDERED = exists(
    medication_request(TOBACCO_USE_CESSATION_PHARMACOTHERAPY).where(
        is_order, lambda m: m.recorded.during_day(SIX_MONTHS_BEFORE_AND_DURING_MP)
    )
)
# medicationRequestPeriod() during the window: the facts keep the request's start and
# the end of its dosage bounds (see docs/caregaps.md, "What the facts lack").
ACTIVE_PHARMACOTHERAPY_FOR_TOBACCO_CESSATION = exists(
    medication_request(TOBACCO_USE_CESSATION_PHARMACOTHERAPY).where(
        is_medication_active,
        lambda m: m.start.during_day(SIX_MONTHS_BEFORE_AND_DURING_MP),
        lambda m: m.end.is_null() | m.end.during_day(SIX_MONTHS_BEFORE_AND_DURING_MP),
    )
)

CESSATION_INTERVENTION = (
    TOBACCO_CESSATION_COUNSELING_GIVEN
    | TOBACCO_CESSATION_PHARMACOTHERAPY_ORDERED
    | ACTIVE_PHARMACOTHERAPY_FOR_TOBACCO_CESSATION
)

MEASURE = Measure(
    id="CMS138",
    title="Tobacco Use: Screening and Cessation Intervention",
    url="https://madie.cms.gov/Measure/PreventiveCareAndTobaccoUseScreeningAndCessationInterventionFHIR",
    closing=(Closing(observation(TOBACCO_USE_SCREENING).where(is_assessment_performed), 12),),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=HAS_HOSPICE_SERVICES,
            exclusion_reasons=(HOSPICE,),
            numerator=MOST_RECENT_TOBACCO_USE_SCREENING_INDICATES_TOBACCO_NON_USER
            | MOST_RECENT_TOBACCO_USE_SCREENING_INDICATES_TOBACCO_USER,
        ),
        Group(
            initial_population=INITIAL_POPULATION,
            denominator=MOST_RECENT_TOBACCO_USE_SCREENING_INDICATES_TOBACCO_USER,
            denominator_exclusion=HAS_HOSPICE_SERVICES,
            exclusion_reasons=(HOSPICE,),
            numerator=CESSATION_INTERVENTION,
        ),
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=HAS_HOSPICE_SERVICES,
            exclusion_reasons=(HOSPICE,),
            numerator=MOST_RECENT_TOBACCO_USE_SCREENING_INDICATES_TOBACCO_NON_USER
            | (MOST_RECENT_TOBACCO_USE_SCREENING_INDICATES_TOBACCO_USER & CESSATION_INTERVENTION),
        ),
    ),
)
