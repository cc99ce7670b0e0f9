"""CMS69 Preventive Care and Screening: BMI Screening and Follow-Up Plan
(PCSBMIScreenAndFollowUpFHIR)."""

from __future__ import annotations

from careloop.caregaps.dsl import (
    ACT_CODE,
    ACTIVE_CLINICAL,
    LOINC,
    MP,
    Code,
    Facts,
    Row,
    exists,
    exists_for,
    valueset,
)
from careloop.caregaps.library import (
    HAS_HOSPICE_SERVICES,
    HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD,
    HOSPICE,
    PALLIATIVE,
    RESULT_STATUSES,
    condition,
    encounter,
    is_encounter_performed,
    medication_request,
    observation,
    procedure,
    service_request,
)
from careloop.caregaps.measure import Closing, Group, Measure
from careloop.caregaps.sql import Cond

ENCOUNTER_TO_EVALUATE_BMI = valueset("Encounter to Evaluate BMI", "2.16.840.1.113883.3.600.1.1751")
FOLLOW_UP_ABOVE_NORMAL_BMI = valueset(
    "Follow Up for Above Normal BMI", "2.16.840.1.113883.3.600.1.1525"
)
FOLLOW_UP_BELOW_NORMAL_BMI = valueset(
    "Follow Up for Below Normal BMI", "2.16.840.1.113883.3.600.1.1528"
)
MEDICAL_REASON = valueset("Medical Reason", "2.16.840.1.113883.3.526.3.1007")
MEDICATIONS_ABOVE_NORMAL_BMI = valueset(
    "Medications for Above Normal BMI", "2.16.840.1.113883.3.526.3.1561"
)
MEDICATIONS_BELOW_NORMAL_BMI = valueset(
    "Medications for Below Normal BMI", "2.16.840.1.113883.3.526.3.1562"
)
OVERWEIGHT_OR_OBESE = valueset("Overweight or Obese", "2.16.840.1.113762.1.4.1047.502")
PATIENT_DECLINED = valueset("Patient Declined", "2.16.840.1.113883.3.526.3.1582")
PREGNANCY_OR_OTHER_RELATED_DIAGNOSES = valueset(
    "Pregnancy or Other Related Diagnoses", "2.16.840.1.113883.3.600.1.1623"
)
REFERRALS_WHERE_WEIGHT_ASSESSMENT_MAY_OCCUR = valueset(
    "Referrals Where Weight Assessment May Occur", "2.16.840.1.113883.3.600.1.1527"
)
UNDERWEIGHT = valueset("Underweight", "2.16.840.1.113883.3.526.3.1563")
BMI_RATIO = Code("39156-5", LOINC)
VIRTUAL = Code("VR", ACT_CODE)

# A definition: the initial population, the exclusion and the relationships read it.
QUALIFYING_ENCOUNTER = (
    encounter(ENCOUNTER_TO_EVALUATE_BMI)
    .where(
        lambda e: e.period.during_day(MP),
        lambda e: e.part("class", where=lambda c: ~(c.code_is(VIRTUAL))),
        is_encounter_performed,
    )
    .define()
)

INITIAL_POPULATION = exists(QUALIFYING_ENCOUNTER.where(lambda e: e.start.age_at_least(e, 18)))

IS_PREGNANT = exists(QUALIFYING_ENCOUNTER) & exists(
    condition(PREGNANCY_OR_OTHER_RELATED_DIAGNOSES).where(
        lambda c: c.status_in("active"), lambda c: c.prevalence.overlaps_day(MP)
    )
)

DENOMINATOR_EXCLUSIONS = (
    HAS_HOSPICE_SERVICES | HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD | IS_PREGNANT
)

# ["observation-bmi"]: the US Core BMI profile is a vital sign with the BMI code.
BMI_DURING_MEASUREMENT_PERIOD = observation(BMI_RATIO).where(
    lambda o: o.category_is("vital-signs"),
    lambda o: o.value_num(">", 0),
    lambda o: o.status_in(*RESULT_STATUSES),
    lambda o: o.period.during_day(MP),
)
DOCUMENTED_LOW_BMI = BMI_DURING_MEASUREMENT_PERIOD.where(lambda o: o.value_num("<", 18.5))
DOCUMENTED_HIGH_BMI = BMI_DURING_MEASUREMENT_PERIOD.where(lambda o: o.value_num(">=", 25))
HAS_NORMAL_BMI = (
    exists(
        BMI_DURING_MEASUREMENT_PERIOD.where(
            lambda o: o.value_num(">=", 18.5), lambda o: o.value_num("<", 25)
        )
    )
    & ~exists(DOCUMENTED_HIGH_BMI)
    & ~exists(DOCUMENTED_LOW_BMI)
)


def _is_active(c: Row) -> Cond:
    return c.status_in(*ACTIVE_CLINICAL)


def _problem_or_concern(c: Row) -> Cond:
    return c.category_is("problem-list-item") | c.category_is("health-concern")


OVERWEIGHT_CONDITION = condition(OVERWEIGHT_OR_OBESE)
UNDERWEIGHT_CONDITION = condition(UNDERWEIGHT)


def _high_ordered(orders: Facts) -> Cond:
    """High BMI Interventions Ordered, whose authoredOn starts during day of MP."""
    return exists(
        orders.where(
            lambda r: r.recorded.during_day(MP),
            lambda r: r.part("reason", OVERWEIGHT_OR_OBESE)
            | exists_for(
                r,
                OVERWEIGHT_CONDITION.where(_problem_or_concern, _is_active),
                lambda c: c.prevalence.starts_on_or_before_day_of(r.recorded),
            ),
        )
    )


def _low_ordered(orders: Facts) -> Cond:
    return exists(
        orders.where(
            lambda r: r.recorded.during_day(MP),
            lambda r: r.part("reason", UNDERWEIGHT)
            | exists_for(
                r,
                UNDERWEIGHT_CONDITION.where(lambda c: c.category_is("health-concern"), _is_active),
                lambda c: c.prevalence.starts_on_or_before_day_of(r.recorded),
            ),
        )
    )


HIGH_BMI_ORDERS = (
    service_request(FOLLOW_UP_ABOVE_NORMAL_BMI, REFERRALS_WHERE_WEIGHT_ASSESSMENT_MAY_OCCUR),
    medication_request(MEDICATIONS_ABOVE_NORMAL_BMI),
)
LOW_BMI_ORDERS = (
    service_request(FOLLOW_UP_BELOW_NORMAL_BMI, REFERRALS_WHERE_WEIGHT_ASSESSMENT_MAY_OCCUR),
    medication_request(MEDICATIONS_BELOW_NORMAL_BMI),
)

HIGH_BMI_INTERVENTIONS_PERFORMED = exists(
    procedure(FOLLOW_UP_ABOVE_NORMAL_BMI).where(
        lambda p: p.start.during_day(MP),
        lambda p: p.part("reason", OVERWEIGHT_OR_OBESE)
        | exists_for(
            p,
            OVERWEIGHT_CONDITION,
            lambda c: c.prevalence.starts_on_or_before_day_of(p.start)
            & ~c.prevalence.ends_before_day_of(p.start),
        ),
    )
)
LOW_BMI_INTERVENTIONS_PERFORMED = exists(
    procedure(FOLLOW_UP_BELOW_NORMAL_BMI).where(
        lambda p: p.start.during_day(MP),
        lambda p: (p.part("reason", UNDERWEIGHT) & p.status_in("completed"))
        | (
            p.period.during_day(MP)
            & exists_for(
                p,
                UNDERWEIGHT_CONDITION.where(lambda c: c.category_is("health-concern"), _is_active),
                lambda c: c.prevalence.starts_on_or_before_day_of(p.start)
                & ~c.prevalence.ends_before_day_of(p.start),
            )
        ),
    )
)

HIGH_BMI_AND_FOLLOW_UP_PROVIDED = exists(DOCUMENTED_HIGH_BMI) & (
    _high_ordered(HIGH_BMI_ORDERS[0])
    | _high_ordered(HIGH_BMI_ORDERS[1])
    | HIGH_BMI_INTERVENTIONS_PERFORMED
)
LOW_BMI_AND_FOLLOW_UP_PROVIDED = exists(DOCUMENTED_LOW_BMI) & (
    _low_ordered(LOW_BMI_ORDERS[0])
    | _low_ordered(LOW_BMI_ORDERS[1])
    | LOW_BMI_INTERVENTIONS_PERFORMED
)

NUMERATOR = HIGH_BMI_AND_FOLLOW_UP_PROVIDED | LOW_BMI_AND_FOLLOW_UP_PROVIDED | HAS_NORMAL_BMI


def _on_encounter_day(facts: Facts) -> Facts:
    return facts.with_(QUALIFYING_ENCOUNTER, lambda n, e: n.recorded.same_day_as(e.start))


MEDICAL_REASON_FOR_NOT_DOCUMENTING_A_FOLLOW_UP_PLAN = exists(
    _on_encounter_day(
        service_request(
            REFERRALS_WHERE_WEIGHT_ASSESSMENT_MAY_OCCUR,
            FOLLOW_UP_ABOVE_NORMAL_BMI,
            FOLLOW_UP_BELOW_NORMAL_BMI,
        )
        .not_done()
        .where(lambda s: s.status_in("completed"), lambda s: s.part("reason", MEDICAL_REASON))
    )
) | exists(
    _on_encounter_day(
        medication_request(MEDICATIONS_ABOVE_NORMAL_BMI, MEDICATIONS_BELOW_NORMAL_BMI)
        .not_done()
        .where(lambda m: m.status_in("completed"), lambda m: m.part("reason", MEDICAL_REASON))
    )
)
MEDICAL_OR_PATIENT_REASON_FOR_NOT_PERFORMING_BMI_EXAM = exists(
    observation(BMI_RATIO)
    .not_done()
    .with_(QUALIFYING_ENCOUNTER, lambda n, e: n.end.same_day_as(e.start))
    .where(
        lambda n: n.status_in("cancelled"),
        lambda n: n.part("reason", PATIENT_DECLINED, MEDICAL_REASON),
    )
)

URL = "https://madie.cms.gov/Measure/PCSBMIScreenAndFollowUpFHIR"

MEASURE = Measure(
    id="CMS69",
    title="Preventive Care and Screening: BMI Screening and Follow-Up Plan",
    url=URL,
    closing=(Closing(observation(BMI_RATIO).where(lambda o: o.status_in(*RESULT_STATUSES)), 12),),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=DENOMINATOR_EXCLUSIONS,
            numerator=NUMERATOR,
            exclusion_reasons=(HOSPICE, PALLIATIVE, ("pregnancy", IS_PREGNANT)),
            denominator_exception=MEDICAL_REASON_FOR_NOT_DOCUMENTING_A_FOLLOW_UP_PLAN
            | MEDICAL_OR_PATIENT_REASON_FOR_NOT_PERFORMING_BMI_EXAM,
        ),
    ),
)
