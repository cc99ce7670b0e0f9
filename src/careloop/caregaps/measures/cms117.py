"""CMS117 Childhood Immunization Status (ChildhoodImmunizationStatusFHIR).

Vaccinations are counted by distinct days, in windows relative to the birth date:
"Four DTaP Vaccinations" (four vaccinations each a day or more after the previous one)
is four distinct days (careloop.caregaps.dsl.count_days_at_least).
"""

from __future__ import annotations

from careloop.caregaps.dsl import (
    CPT,
    MP,
    SNOMED,
    Code,
    Cond,
    Facts,
    Row,
    ValueSetRef,
    age_between,
    count_days_at_least,
    exists,
    exists_for,
    valueset,
)
from careloop.caregaps.library import (
    ENCOUNTER_PERFORMED_STATUSES_1_8,
    HAS_HOSPICE_SERVICES_6_12,
    HOME_HEALTHCARE,
    OFFICE_VISIT,
    TELEPHONE_VISITS,
    VIRTUAL_ENCOUNTER,
    condition,
    encounter,
    immunization,
    is_immunization_administered,
    is_procedure_performed,
    procedure,
)
from careloop.caregaps.measure import Group, Measure

CVX = "http://hl7.org/fhir/sid/cvx"
ICD10 = "http://www.cms.gov/Medicare/Coding/ICD10"
VS = "2.16.840.1.113883.3.464.1003."


def _vs(name: str, suffix: str) -> ValueSetRef:
    return valueset(name, VS + suffix)


ANAPHYLACTIC_REACTION_TO_DTAP = _vs("Anaphylactic Reaction to DTaP Vaccine", "199.12.1031")
DISORDERS_OF_THE_IMMUNE_SYSTEM = _vs("Disorders of the Immune System", "120.12.1001")
DTAP_VACCINE = _vs("DTaP Vaccine", "196.12.1214")
DTAP_VACCINE_ADMINISTERED = _vs("DTaP Vaccine Administered", "110.12.1022")
ENCEPHALITIS_DUE_TO_DTP_VACCINE = _vs(
    "Encephalitis Due to Diphtheria, Tetanus or Pertussis Vaccine", "1164"
)
HEPATITIS_A = _vs("Hepatitis A", "110.12.1024")
HEPATITIS_A_VACCINE = _vs("Hepatitis A Vaccine", "196.12.1215")
HEPATITIS_A_VACCINE_ADMINISTERED = _vs("Hepatitis A Vaccine Administered", "110.12.1041")
HEPATITIS_B = _vs("Hepatitis B", "110.12.1025")
HEPATITIS_B_VACCINE = _vs("Hepatitis B Vaccine", "196.12.1216")
HEPATITIS_B_VACCINE_ADMINISTERED = _vs("Hepatitis B Vaccine Administered", "110.12.1042")
HIB_3_DOSE = _vs("Hib Vaccine (3 dose schedule)", "110.12.1083")
HIB_3_DOSE_ADMINISTERED = _vs("Hib Vaccine (3 dose schedule) Administered", "110.12.1084")
HIB_4_DOSE = _vs("Hib Vaccine (4 dose schedule)", "110.12.1085")
HIB_4_DOSE_ADMINISTERED = _vs("Hib Vaccine (4 dose schedule) Administered", "110.12.1086")
HIV = _vs("HIV", "120.12.1003")
IPV = _vs("Inactivated Polio Vaccine (IPV)", "196.12.1219")
IPV_ADMINISTERED = _vs("Inactivated Polio Vaccine (IPV) Administered", "110.12.1045")
CHILD_INFLUENZA_VACCINE = _vs("Child Influenza Vaccine", "196.12.1218")
CHILD_INFLUENZA_VACCINE_ADMINISTERED = _vs("Child Influenza Vaccine Administered", "110.12.1044")
LAIV_VACCINE = _vs("Influenza Virus LAIV Vaccine", "110.12.1087")
LAIV_VACCINE_ADMINISTERED = _vs("Influenza Virus LAIV Vaccine Administered", "110.12.1088")
INTUSSUSCEPTION = _vs("Intussusception", "199.12.1056")
LYMPHATIC_MALIGNANT_NEOPLASM = _vs(
    "Malignant Neoplasm of Lymphatic and Hematopoietic Tissue", "108.12.1009"
)
MEASLES = _vs("Measles", "110.12.1053")
MMR_VACCINE = _vs("Measles, Mumps and Rubella (MMR) Vaccine", "196.12.1224")
MMR_VACCINE_ADMINISTERED = _vs(
    "Measles, Mumps and Rubella (MMR) Vaccine Administered", "110.12.1031"
)
MUMPS = _vs("Mumps", "110.12.1032")
PCV = _vs("Pneumococcal Conjugate Vaccine", "196.12.1221")
PCV_ADMINISTERED = _vs("Pneumococcal Conjugate Vaccine Administered", "110.12.1046")
PREVENTIVE_INITIAL_0_TO_17 = _vs(
    "Preventive Care Services, Initial Office Visit, 0 to 17", "101.12.1022"
)
PREVENTIVE_ESTABLISHED_0_TO_17 = _vs(
    "Preventive Care, Established Office Visit, 0 to 17", "101.12.1024"
)
ROTAVIRUS_2_DOSE_ADMINISTERED = _vs(
    "Rotavirus Vaccine (2 dose schedule) Administered", "110.12.1048"
)
ROTAVIRUS_3_DOSE = _vs("Rotavirus Vaccine (3 dose schedule)", "196.12.1223")
ROTAVIRUS_3_DOSE_ADMINISTERED = _vs(
    "Rotavirus Vaccine (3 dose schedule) Administered", "110.12.1047"
)
RUBELLA = _vs("Rubella", "110.12.1037")
SEVERE_COMBINED_IMMUNODEFICIENCY = _vs("Severe Combined Immunodeficiency", "120.12.1007")
VARICELLA_ZOSTER = _vs("Varicella Zoster", "110.12.1039")
VZV_VACCINE = _vs("Varicella Zoster Vaccine (VZV)", "196.12.1170")
VZV_VACCINE_ADMINISTERED = _vs("Varicella Zoster Vaccine (VZV) Administered", "110.12.1040")

ANAPHYLAXIS_HIB = Code("433621000124101", SNOMED)
ANAPHYLAXIS_HEPATITIS_B = Code("428321000124101", SNOMED)
ANAPHYLAXIS_ROTAVIRUS = Code("428331000124103", SNOMED)
OFFICE_VISIT_99211 = Code("99211", CPT)
ROTAVIRUS_MONOVALENT = Code("119", CVX)
ANAPHYLAXIS_HEPATITIS_A = Code("471311000124103", SNOMED)
NEWBORN_VACCINE_INTO_MUSCLE = Code("3E0234Z", ICD10)
ANAPHYLAXIS_INFLUENZA = Code("471361000124100", SNOMED)
ANAPHYLAXIS_MMR = Code("471331000124109", SNOMED)
ANAPHYLAXIS_PNEUMOCOCCAL = Code("471141000124102", SNOMED)
ANAPHYLAXIS_POLIO = Code("471321000124106", SNOMED)
ANAPHYLAXIS_VZV = Code("471341000124104", SNOMED)

# Windows relative to the birth date, as (years, days) offsets.
Offset = tuple[int, int]
BIRTH: Offset = (0, 0)
DAY_42: Offset = (0, 42)
DAY_180: Offset = (0, 180)
FIRST_BIRTHDAY: Offset = (1, 0)
SECOND_BIRTHDAY: Offset = (2, 0)

QUALIFYING_ENCOUNTERS = encounter(
    OFFICE_VISIT,
    HOME_HEALTHCARE,
    PREVENTIVE_ESTABLISHED_0_TO_17,
    PREVENTIVE_INITIAL_0_TO_17,
    OFFICE_VISIT_99211,
    VIRTUAL_ENCOUNTER,
    TELEPHONE_VISITS,
).where(lambda e: e.status_in(*ENCOUNTER_PERFORMED_STATUSES_1_8), lambda e: e.period.during_day(MP))

INITIAL_POPULATION = age_between(2, 2) & exists(QUALIFYING_ENCOUNTERS)


def _in_first_two_years(*refs: ValueSetRef | Code) -> Cond:
    """Conditions whose prevalence starts during day of "First Two Years"."""
    return exists(condition(*refs).where(lambda c: c.start.day_in_life(c, BIRTH, SECOND_BIRTHDAY)))


DENOMINATOR_EXCLUSIONS = (
    HAS_HOSPICE_SERVICES_6_12
    | _in_first_two_years(SEVERE_COMBINED_IMMUNODEFICIENCY)
    | _in_first_two_years(DISORDERS_OF_THE_IMMUNE_SYSTEM)
    | _in_first_two_years(HIV)
    | _in_first_two_years(LYMPHATIC_MALIGNANT_NEOPLASM)
    | _in_first_two_years(INTUSSUSCEPTION)
)


def _given(
    vaccine: ValueSetRef | Code,
    administered: ValueSetRef | Code,
    low: Offset,
    high: Offset = SECOND_BIRTHDAY,
    *,
    procedure_low: Offset | None = None,
) -> tuple[Facts, Facts]:
    """ "X Immunizations or Procedures": administered immunizations and performed
    procedures whose earliest date falls in [birth + low, birth + high]."""
    return (
        immunization(vaccine).where(
            is_immunization_administered, lambda i: i.start.day_in_life(i, low, high)
        ),
        procedure(administered).where(
            is_procedure_performed,
            lambda p: p.start.day_in_life(p, procedure_low or low, high),
        ),
    )


def _any(facts: tuple[Facts, ...]) -> Cond:
    return exists(facts[0]) | exists(facts[1]) if len(facts) == 2 else exists(facts[0])


DTAP = _given(DTAP_VACCINE, DTAP_VACCINE_ADMINISTERED, DAY_42)
POLIO = _given(IPV, IPV_ADMINISTERED, DAY_42)
MMR = _given(MMR_VACCINE, MMR_VACCINE_ADMINISTERED, FIRST_BIRTHDAY)
HIB_3 = _given(HIB_3_DOSE, HIB_3_DOSE_ADMINISTERED, DAY_42)
HIB_4 = _given(HIB_4_DOSE, HIB_4_DOSE_ADMINISTERED, DAY_42)
HEP_B = _given(HEPATITIS_B_VACCINE, HEPATITIS_B_VACCINE_ADMINISTERED, BIRTH)
VZV = _given(VZV_VACCINE, VZV_VACCINE_ADMINISTERED, FIRST_BIRTHDAY)
PNEUMOCOCCAL = _given(PCV, PCV_ADMINISTERED, DAY_42)
HEP_A = _given(HEPATITIS_A_VACCINE, HEPATITIS_A_VACCINE_ADMINISTERED, FIRST_BIRTHDAY)
ROTAVIRUS_2 = _given(ROTAVIRUS_MONOVALENT, ROTAVIRUS_2_DOSE_ADMINISTERED, DAY_42)
ROTAVIRUS_3 = _given(ROTAVIRUS_3_DOSE, ROTAVIRUS_3_DOSE_ADMINISTERED, DAY_42)
INFLUENZA = _given(
    CHILD_INFLUENZA_VACCINE, CHILD_INFLUENZA_VACCINE_ADMINISTERED, DAY_42, procedure_low=DAY_180
)
LAIV = _given(LAIV_VACCINE, LAIV_VACCINE_ADMINISTERED, SECOND_BIRTHDAY)


def _by_dose_schedule(short: tuple[Facts, Facts], long: tuple[Facts, Facts], doses: int) -> Cond:
    """Hib / rotavirus: `doses` distinct days, one more when any dose was of the longer
    schedule ("Has Appropriate Number of ... Immunizations")."""
    both = (*short, *long)
    return (_any(long) & count_days_at_least(doses + 1, *both)) | (
        ~_any(long) & count_days_at_least(doses, *both)
    )


NEWBORN_VACCINE_REQUIREMENT = procedure(NEWBORN_VACCINE_INTO_MUSCLE).where(
    is_procedure_performed, lambda p: p.start.day_in_life(p, BIRTH, (0, 7))
)


def _after_newborn_vaccine(row: Row) -> Cond:
    return exists_for(
        row, NEWBORN_VACCINE_REQUIREMENT, lambda n: row.start.day_after_day_of(n.start)
    )


MEETS_HEP_B_VACCINATION_REQUIREMENT = count_days_at_least(
    2, *(facts.where(_after_newborn_vaccine) for facts in HEP_B)
)

NUMERATOR = (
    (
        count_days_at_least(4, *DTAP)
        | _in_first_two_years(ANAPHYLACTIC_REACTION_TO_DTAP, ENCEPHALITIS_DUE_TO_DTP_VACCINE)
    )
    & (count_days_at_least(3, *POLIO) | _in_first_two_years(ANAPHYLAXIS_POLIO))
    & (
        _any(MMR)
        | _in_first_two_years(ANAPHYLAXIS_MMR)
        | (_in_first_two_years(MEASLES) & _in_first_two_years(MUMPS) & _in_first_two_years(RUBELLA))
    )
    & (_by_dose_schedule(HIB_3, HIB_4, 3) | _in_first_two_years(ANAPHYLAXIS_HIB))
    & (
        count_days_at_least(3, *HEP_B)
        | MEETS_HEP_B_VACCINATION_REQUIREMENT
        | _in_first_two_years(ANAPHYLAXIS_HEPATITIS_B, HEPATITIS_B)
    )
    & (_any(VZV) | _in_first_two_years(VARICELLA_ZOSTER, ANAPHYLAXIS_VZV))
    & (count_days_at_least(4, *PNEUMOCOCCAL) | _in_first_two_years(ANAPHYLAXIS_PNEUMOCOCCAL))
    & (_any(HEP_A) | _in_first_two_years(HEPATITIS_A, ANAPHYLAXIS_HEPATITIS_A))
    & (_by_dose_schedule(ROTAVIRUS_2, ROTAVIRUS_3, 2) | _in_first_two_years(ANAPHYLAXIS_ROTAVIRUS))
    & (
        count_days_at_least(2, *INFLUENZA)
        | (_any(LAIV) & _any(INFLUENZA))
        | _in_first_two_years(ANAPHYLAXIS_INFLUENZA)
    )
)

MEASURE = Measure(
    id="CMS117",
    title="Childhood Immunization Status",
    url="https://madie.cms.gov/Measure/ChildhoodImmunizationStatusFHIR",
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=DENOMINATOR_EXCLUSIONS,
            numerator=NUMERATOR,
            exclusion_reasons=(("hospice", HAS_HOSPICE_SERVICES_6_12),),
        ),
    ),
)
