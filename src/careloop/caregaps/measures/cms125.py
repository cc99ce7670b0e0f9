"""CMS125 Breast Cancer Screening (CMS125FHIRBreastCancerScreening 0.4.000)."""

from __future__ import annotations

from careloop.caregaps.dsl import (
    MP,
    SNOMED,
    Code,
    Span,
    ValueSetRef,
    age_between,
    exists,
    sex_is,
    valueset,
)
from careloop.caregaps.dsl import date_in_start_year as dt
from careloop.caregaps.library import (
    FRAILTY,
    HAS_HOSPICE_SERVICES,
    HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD,
    HOSPICE,
    IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME,
    IS_AGE_66_OR_OLDER_WITH_ADVANCED_ILLNESS_AND_FRAILTY,
    NURSING_HOME,
    PALLIATIVE,
    QUALIFYING_ENCOUNTERS,
    condition,
    is_diagnostic_study_performed,
    is_procedure_performed,
    observation,
    procedure,
    verified,
)
from careloop.caregaps.measure import Closing, Group, Measure
from careloop.caregaps.sql import Cond

BILATERAL_MASTECTOMY = valueset("Bilateral Mastectomy", "2.16.840.1.113883.3.464.1003.198.12.1005")
HISTORY_OF_BILATERAL_MASTECTOMY = valueset(
    "History of bilateral mastectomy", "2.16.840.1.113883.3.464.1003.198.12.1068"
)
MAMMOGRAPHY = valueset("Mammography", "2.16.840.1.113883.3.464.1003.108.12.1018")
STATUS_POST_LEFT_MASTECTOMY = valueset(
    "Status Post Left Mastectomy", "2.16.840.1.113883.3.464.1003.198.12.1069"
)
STATUS_POST_RIGHT_MASTECTOMY = valueset(
    "Status Post Right Mastectomy", "2.16.840.1.113883.3.464.1003.198.12.1070"
)
UNILATERAL_MASTECTOMY_LEFT = valueset(
    "Unilateral Mastectomy Left", "2.16.840.1.113883.3.464.1003.198.12.1133"
)
UNILATERAL_MASTECTOMY_RIGHT = valueset(
    "Unilateral Mastectomy Right", "2.16.840.1.113883.3.464.1003.198.12.1134"
)
UNILATERAL_MASTECTOMY_UNSPECIFIED = valueset(
    "Unilateral Mastectomy, Unspecified Laterality", "2.16.840.1.113883.3.464.1003.198.12.1071"
)
LEFT = Code("7771000", SNOMED)
RIGHT = Code("24028007", SNOMED)
FEMALE = "female"  # Patient.sex = '248152002' (Female (finding))


def _mastectomy_diagnosis(status_post: ValueSetRef, side: Code) -> Cond:
    """Status post X mastectomy, or an unspecified one whose body site is X; verified,
    prevalence starting on or before the end of the period."""
    return exists(
        condition(status_post).where(verified, lambda c: c.prevalence.starts_on_or_before(MP.end))
    ) | exists(
        condition(UNILATERAL_MASTECTOMY_UNSPECIFIED).where(
            verified,
            lambda c: c.part("body_site", side),
            lambda c: c.prevalence.starts_on_or_before(MP.end),
        )
    )


def _mastectomy_procedure(refs: ValueSetRef) -> Cond:
    return exists(
        procedure(refs).where(is_procedure_performed, lambda p: p.period.ends_on_or_before(MP.end))
    )


RIGHT_MASTECTOMY_DIAGNOSIS = _mastectomy_diagnosis(STATUS_POST_RIGHT_MASTECTOMY, RIGHT)
LEFT_MASTECTOMY_DIAGNOSIS = _mastectomy_diagnosis(STATUS_POST_LEFT_MASTECTOMY, LEFT)
RIGHT_MASTECTOMY_PROCEDURE = _mastectomy_procedure(UNILATERAL_MASTECTOMY_RIGHT)
LEFT_MASTECTOMY_PROCEDURE = _mastectomy_procedure(UNILATERAL_MASTECTOMY_LEFT)
BILATERAL_MASTECTOMY_DIAGNOSIS = exists(
    condition(HISTORY_OF_BILATERAL_MASTECTOMY).where(
        verified, lambda c: c.prevalence.starts_on_or_before(MP.end)
    )
)
BILATERAL_MASTECTOMY_PROCEDURE = _mastectomy_procedure(BILATERAL_MASTECTOMY)

INITIAL_POPULATION = age_between(42, 74) & sex_is(FEMALE) & exists(QUALIFYING_ENCOUNTERS)

BILATERAL_MASTECTOMY_OR_BOTH_SIDES = (
    (
        (RIGHT_MASTECTOMY_DIAGNOSIS | RIGHT_MASTECTOMY_PROCEDURE)
        & (LEFT_MASTECTOMY_DIAGNOSIS | LEFT_MASTECTOMY_PROCEDURE)
    )
    | BILATERAL_MASTECTOMY_DIAGNOSIS
    | BILATERAL_MASTECTOMY_PROCEDURE
)

DENOMINATOR_EXCLUSIONS = (
    HAS_HOSPICE_SERVICES
    | BILATERAL_MASTECTOMY_OR_BOTH_SIDES
    | IS_AGE_66_OR_OLDER_WITH_ADVANCED_ILLNESS_AND_FRAILTY
    | IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME
    | HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD
)

OCTOBER_1_TWO_YEARS_PRIOR = dt(-2, 10, 1)

NUMERATOR = exists(
    observation(MAMMOGRAPHY).where(
        is_diagnostic_study_performed,
        lambda m: m.period.ends_during_day(Span(OCTOBER_1_TWO_YEARS_PRIOR, MP.end)),
    )
)

MEASURE = Measure(
    id="CMS125",
    title="Breast Cancer Screening",
    url="https://madie.cms.gov/Measure/CMS125FHIRBreastCancerScreening",
    version="0.4.000",
    # A mammogram keeps the measure met while it is in the lookback: October 1 two
    # years before the period, i.e. up to 27 months.
    closing=(Closing(observation(MAMMOGRAPHY).where(is_diagnostic_study_performed), 27),),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=DENOMINATOR_EXCLUSIONS,
            numerator=NUMERATOR,
            exclusion_reasons=(
                HOSPICE,
                ("mastectomy", BILATERAL_MASTECTOMY_OR_BOTH_SIDES),
                FRAILTY,
                NURSING_HOME,
                PALLIATIVE,
            ),
            stratifiers=(age_between(42, 51), age_between(52, 74)),
        ),
    ),
)
