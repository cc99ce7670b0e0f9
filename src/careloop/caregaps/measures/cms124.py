"""CMS124 Cervical Cancer Screening (CMS124FHIRCervicalCancerScreening)."""

from __future__ import annotations

from careloop.caregaps.dsl import MP, age_between, exists, sex_is, valueset
from careloop.caregaps.library import (
    HAS_HOSPICE_SERVICES,
    HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD,
    HOME_HEALTHCARE,
    HOSPICE,
    OFFICE_VISIT,
    PALLIATIVE,
    PREVENTIVE_ESTABLISHED_18_UP,
    PREVENTIVE_INITIAL_18_UP,
    TELEPHONE_VISITS,
    VIRTUAL_ENCOUNTER,
    condition,
    encounter,
    is_encounter_performed,
    is_laboratory_test_performed,
    is_procedure_performed,
    observation,
    procedure,
    verified,
)
from careloop.caregaps.measure import Closing, Group, Measure

ABSENCE_OF_CERVIX_DIAGNOSIS = valueset(
    "Congenital or Acquired Absence of Cervix", "2.16.840.1.113883.3.464.1003.111.12.1016"
)
HPV_TEST = valueset("HPV Test", "2.16.840.1.113883.3.464.1003.110.12.1059")
HYSTERECTOMY_WITH_NO_RESIDUAL_CERVIX = valueset(
    "Hysterectomy with No Residual Cervix", "2.16.840.1.113883.3.464.1003.198.12.1014"
)
PAP_TEST = valueset("Pap Test", "2.16.840.1.113883.3.464.1003.108.12.1017")

QUALIFYING_ENCOUNTERS = encounter(
    OFFICE_VISIT,
    PREVENTIVE_ESTABLISHED_18_UP,
    PREVENTIVE_INITIAL_18_UP,
    HOME_HEALTHCARE,
    TELEPHONE_VISITS,
    VIRTUAL_ENCOUNTER,
).where(is_encounter_performed, lambda e: e.period.during_day(MP))

INITIAL_POPULATION = age_between(24, 64) & sex_is("female") & exists(QUALIFYING_ENCOUNTERS)

ABSENCE_OF_CERVIX = exists(
    procedure(HYSTERECTOMY_WITH_NO_RESIDUAL_CERVIX).where(
        is_procedure_performed, lambda p: p.period.ends_on_or_before(MP.end)
    )
) | exists(
    condition(ABSENCE_OF_CERVIX_DIAGNOSIS).where(
        verified, lambda c: c.prevalence.starts_on_or_before(MP.end)
    )
)

DENOMINATOR_EXCLUSIONS = (
    HAS_HOSPICE_SERVICES | ABSENCE_OF_CERVIX | HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD
)

CERVICAL_CYTOLOGY_WITHIN_3_YEARS = exists(
    observation(PAP_TEST).where(
        is_laboratory_test_performed,
        lambda o: o.latest.during_day(MP.minus_years(2)),
        lambda o: o.value_is_not_null(),
    )
)
HPV_TEST_WITHIN_5_YEARS_FOR_WOMEN_AGE_30_AND_OLDER = exists(
    observation(HPV_TEST).where(
        is_laboratory_test_performed,
        lambda o: o.latest.age_at_least(o, 30),
        lambda o: o.latest.during_day(MP.minus_years(4)),
        lambda o: o.value_is_not_null(),
    )
)

MEASURE = Measure(
    id="CMS124",
    title="Cervical Cancer Screening",
    url="https://madie.cms.gov/Measure/CMS124FHIRCervicalCancerScreening",
    closing=(
        Closing(observation(PAP_TEST).where(is_laboratory_test_performed), 36),
        Closing(observation(HPV_TEST).where(is_laboratory_test_performed), 60),
    ),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=DENOMINATOR_EXCLUSIONS,
            exclusion_reasons=(HOSPICE, ("hysterectomy", ABSENCE_OF_CERVIX), PALLIATIVE),
            numerator=CERVICAL_CYTOLOGY_WITHIN_3_YEARS
            | HPV_TEST_WITHIN_5_YEARS_FOR_WOMEN_AGE_30_AND_OLDER,
        ),
    ),
)
