"""CMS122 Diabetes: Glycemic Status Assessment Greater Than 9% (inverse measure)
(CMS122FHIRDiabetesAssessGreaterThan9Percent)."""

from __future__ import annotations

from careloop.caregaps.dsl import CPT, LOINC, MP, Code, age_between, exists, valueset
from careloop.caregaps.library import (
    ANNUAL_WELLNESS_VISIT,
    FRAILTY,
    HAS_HOSPICE_SERVICES,
    HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD,
    HOME_HEALTHCARE,
    HOSPICE,
    IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME,
    IS_AGE_66_OR_OLDER_WITH_ADVANCED_ILLNESS_AND_FRAILTY,
    NURSING_HOME,
    OFFICE_VISIT,
    PALLIATIVE,
    PREVENTIVE_ESTABLISHED_18_UP,
    PREVENTIVE_INITIAL_18_UP,
    TELEPHONE_VISITS,
    condition,
    encounter,
    is_encounter_performed,
    is_laboratory_test_performed,
    observation,
    verified,
)
from careloop.caregaps.measure import Closing, Group, Measure

HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
DIABETES = valueset("Diabetes", "2.16.840.1.113883.3.464.1003.103.12.1001")
HBA1C_LABORATORY_TEST = valueset(
    "HbA1c Laboratory Test", "2.16.840.1.113883.3.464.1003.198.12.1013"
)
NUTRITION_SERVICES = valueset("Nutrition Services", "2.16.840.1.113883.3.464.1003.1006")
GLUCOSE_MANAGEMENT_INDICATOR = Code("97506-0", LOINC)
MEDICAL_NUTRITION_THERAPY = (
    Code("97802", CPT),
    Code("97803", CPT),
    Code("97804", CPT),
    Code("G0270", HCPCS),
    Code("G0271", HCPCS),
)

QUALIFYING_ENCOUNTERS = encounter(
    OFFICE_VISIT,
    ANNUAL_WELLNESS_VISIT,
    PREVENTIVE_ESTABLISHED_18_UP,
    PREVENTIVE_INITIAL_18_UP,
    HOME_HEALTHCARE,
    NUTRITION_SERVICES,
    *MEDICAL_NUTRITION_THERAPY,
    TELEPHONE_VISITS,
).where(is_encounter_performed, lambda e: e.period.during_day(MP))

INITIAL_POPULATION = (
    age_between(18, 75)
    & exists(QUALIFYING_ENCOUNTERS)
    & exists(condition(DIABETES).where(verified, lambda c: c.prevalence.overlaps_day(MP)))
)

DENOMINATOR_EXCLUSIONS = (
    HAS_HOSPICE_SERVICES
    | IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME
    | IS_AGE_66_OR_OLDER_WITH_ADVANCED_ILLNESS_AND_FRAILTY
    | HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD
)

GLYCEMIC_STATUS_ASSESSMENT = observation(HBA1C_LABORATORY_TEST, GLUCOSE_MANAGEMENT_INDICATOR).where(
    is_laboratory_test_performed, lambda o: o.latest.during_day(MP)
)
ON_MOST_RECENT_DAY = GLYCEMIC_STATUS_ASSESSMENT.on_most_recent_day()

# "Lowest ... Reading on Most Recent Day" sorts the day's readings by `value as
# Quantity`, nulls first, and then looks at the reading's own value: a reading with
# no value at all is "without result"; one with a coded value sorts first but is
# neither without result nor above 9.
HAS_MOST_RECENT_GLYCEMIC_STATUS_ASSESSMENT_WITHOUT_RESULT = exists(
    ON_MOST_RECENT_DAY.where(lambda o: ~o.value_is_not_null())
)
HAS_MOST_RECENT_ELEVATED_GLYCEMIC_STATUS_ASSESSMENT = exists(ON_MOST_RECENT_DAY) & ~exists(
    ON_MOST_RECENT_DAY.where(lambda o: o.quantity_is_null() | o.value_num("<=", 9))
)
HAS_NO_RECORD_OF_GLYCEMIC_STATUS_ASSESSMENT = ~exists(GLYCEMIC_STATUS_ASSESSMENT)

MEASURE = Measure(
    id="CMS122",
    title="Diabetes: Glycemic Status Assessment Greater Than 9%",
    url="https://madie.cms.gov/Measure/CMS122FHIRDiabetesAssessGreaterThan9Percent",
    improvement="decrease",
    closing=(
        Closing(
            observation(HBA1C_LABORATORY_TEST, GLUCOSE_MANAGEMENT_INDICATOR).where(
                is_laboratory_test_performed
            ),
            12,
        ),
    ),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=DENOMINATOR_EXCLUSIONS,
            exclusion_reasons=(HOSPICE, NURSING_HOME, FRAILTY, PALLIATIVE),
            numerator=HAS_MOST_RECENT_GLYCEMIC_STATUS_ASSESSMENT_WITHOUT_RESULT
            | HAS_MOST_RECENT_ELEVATED_GLYCEMIC_STATUS_ASSESSMENT
            | HAS_NO_RECORD_OF_GLYCEMIC_STATUS_ASSESSMENT,
        ),
    ),
)
