"""CMS130 Colorectal Cancer Screening (CMS130FHIRColorectalCancerScreening)."""

from __future__ import annotations

from careloop.caregaps.dsl import MP, age_between, exists, valueset
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
    is_laboratory_test_performed,
    is_procedure_performed,
    observation,
    procedure,
    verified,
)
from careloop.caregaps.measure import Closing, Group, Measure

COLONOSCOPY = valueset("Colonoscopy", "2.16.840.1.113883.3.464.1003.108.12.1020")
CT_COLONOGRAPHY = valueset("CT Colonography", "2.16.840.1.113883.3.464.1003.108.12.1038")
FOBT = valueset("Fecal Occult Blood Test (FOBT)", "2.16.840.1.113883.3.464.1003.198.12.1011")
SDNA_FIT_TEST = valueset("sDNA FIT Test", "2.16.840.1.113883.3.464.1003.108.12.1039")
FLEXIBLE_SIGMOIDOSCOPY = valueset(
    "Flexible Sigmoidoscopy", "2.16.840.1.113883.3.464.1003.198.12.1010"
)
MALIGNANT_NEOPLASM_OF_COLON = valueset(
    "Malignant Neoplasm of Colon", "2.16.840.1.113883.3.464.1003.108.12.1001"
)
TOTAL_COLECTOMY = valueset("Total Colectomy", "2.16.840.1.113883.3.464.1003.198.12.1019")

INITIAL_POPULATION = age_between(46, 75) & exists(QUALIFYING_ENCOUNTERS)

MALIGNANT_NEOPLASM = exists(
    condition(MALIGNANT_NEOPLASM_OF_COLON).where(
        verified, lambda c: c.prevalence.starts_on_or_before(MP.end, day=True)
    )
)
TOTAL_COLECTOMY_PERFORMED = exists(
    procedure(TOTAL_COLECTOMY).where(
        is_procedure_performed, lambda p: p.period.ends_on_or_before(MP.end, day=True)
    )
)

DENOMINATOR_EXCLUSIONS = (
    HAS_HOSPICE_SERVICES
    | MALIGNANT_NEOPLASM
    | TOTAL_COLECTOMY_PERFORMED
    | IS_AGE_66_OR_OLDER_WITH_ADVANCED_ILLNESS_AND_FRAILTY
    | IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME
    | HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD
)

FECAL_OCCULT_BLOOD_TEST_PERFORMED = exists(
    observation(FOBT).where(
        is_laboratory_test_performed,
        lambda o: o.value_is_not_null(),
        lambda o: o.latest.during_day(MP),
    )
)
STOOL_DNA_WITH_FIT_TEST_PERFORMED = exists(
    observation(SDNA_FIT_TEST).where(
        is_laboratory_test_performed,
        lambda o: o.value_is_not_null(),
        lambda o: o.latest.during_day(MP.minus_years(2)),
    )
)
FLEXIBLE_SIGMOIDOSCOPY_PERFORMED = exists(
    procedure(FLEXIBLE_SIGMOIDOSCOPY).where(
        is_procedure_performed, lambda p: p.period.ends_during_day(MP.minus_years(4))
    )
)
CT_COLONOGRAPHY_PERFORMED = exists(
    observation(CT_COLONOGRAPHY).where(
        is_diagnostic_study_performed, lambda o: o.period.ends_during_day(MP.minus_years(4))
    )
)
COLONOSCOPY_PERFORMED = exists(
    procedure(COLONOSCOPY).where(
        is_procedure_performed, lambda p: p.period.ends_during_day(MP.minus_years(9))
    )
)

NUMERATOR = (
    FECAL_OCCULT_BLOOD_TEST_PERFORMED
    | STOOL_DNA_WITH_FIT_TEST_PERFORMED
    | FLEXIBLE_SIGMOIDOSCOPY_PERFORMED
    | CT_COLONOGRAPHY_PERFORMED
    | COLONOSCOPY_PERFORMED
)

MEASURE = Measure(
    id="CMS130",
    title="Colorectal Cancer Screening",
    url="https://madie.cms.gov/Measure/CMS130FHIRColorectalCancerScreening",
    closing=(
        Closing(observation(FOBT).where(is_laboratory_test_performed), 12),
        Closing(observation(SDNA_FIT_TEST).where(is_laboratory_test_performed), 36),
        Closing(procedure(FLEXIBLE_SIGMOIDOSCOPY).where(is_procedure_performed), 60),
        Closing(observation(CT_COLONOGRAPHY).where(is_diagnostic_study_performed), 60),
        Closing(procedure(COLONOSCOPY).where(is_procedure_performed), 120),
    ),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=DENOMINATOR_EXCLUSIONS,
            numerator=NUMERATOR,
            exclusion_reasons=(
                HOSPICE,
                ("colorectal_cancer", MALIGNANT_NEOPLASM),
                ("colectomy", TOTAL_COLECTOMY_PERFORMED),
                FRAILTY,
                NURSING_HOME,
                PALLIATIVE,
            ),
            stratifiers=(age_between(46, 49), age_between(50, 75)),
        ),
    ),
)
