"""DM-KIDNEY: kidney health evaluation for patients with diabetes aged 18 to 85: an
eGFR and a urine albumin-creatinine ratio (uACR) every year (a practice-defined gap
after CMS951 Kidney Health Evaluation; docs/caregaps.md, "Practice gaps").

Met when both tests were resulted in the 12 months up to the end of the period; met
until the earlier of the two lapses (each test + 12 months). Excluded: hospice,
palliative care, and CKD stage 5 or end-stage renal disease (the official sets, as
CMS951 does). The test codes are the practice sets below (LOINC).
"""

from __future__ import annotations

from careloop.caregaps.dsl import LOINC, MP, Code, age_between, exists, valueset
from careloop.caregaps.library import (
    HOSPICE,
    PALLIATIVE,
    condition,
    is_laboratory_test_performed,
    observation,
    verified,
)
from careloop.caregaps.measure import Closing, Group, Measure
from careloop.caregaps.practice import IN_CARE, last_months, paired
from careloop.caregaps.valuesets_local import local_valueset

DIABETES = valueset("Diabetes", "2.16.840.1.113883.3.464.1003.103.12.1001")
CKD_STAGE_5 = valueset("Chronic Kidney Disease, Stage 5", "2.16.840.1.113883.3.526.3.1002")
END_STAGE_RENAL_DISEASE = valueset("End Stage Renal Disease", "2.16.840.1.113883.3.526.3.353")

GFR = "Glomerular filtration rate/1.73 sq M.predicted"
EGFR_LAB_TEST = local_valueset(
    "Estimated Glomerular Filtration Rate Lab Test",
    3,
    (
        Code("33914-3", LOINC, f"{GFR} in Serum or Plasma by Creatinine-based formula (MDRD)"),
        Code("48642-3", LOINC, f"{GFR} among non-blacks in Serum, Plasma or Blood (MDRD)"),
        Code("48643-1", LOINC, f"{GFR} among blacks in Serum, Plasma or Blood (MDRD)"),
        Code("50044-7", LOINC, f"{GFR} among females in Serum, Plasma or Blood (MDRD)"),
        Code("62238-1", LOINC, f"{GFR} in Serum, Plasma or Blood by Creatinine (CKD-EPI)"),
        Code("69405-9", LOINC, f"{GFR} in Serum, Plasma or Blood"),
        Code("70969-1", LOINC, f"{GFR} among blacks in Serum, Plasma or Blood (CKD-EPI)"),
        Code("77147-7", LOINC, f"{GFR} in Serum, Plasma or Blood by Creatinine (MDRD)"),
        Code("98979-8", LOINC, f"{GFR} in Serum, Plasma or Blood by Creatinine (CKD-EPI 2021)"),
        Code("98980-6", LOINC, f"{GFR} by Creatinine and Cystatin C (CKD-EPI 2021)"),
    ),
)
UACR_LAB_TEST = local_valueset(
    "Urine Albumin Creatinine Ratio Lab Test",
    4,
    (
        Code("9318-7", LOINC, "Albumin/Creatinine [Mass Ratio] in Urine"),
        Code("13705-9", LOINC, "Albumin/Creatinine [Mass Ratio] in 24 hour Urine"),
        Code("14959-1", LOINC, "Microalbumin/Creatinine [Mass Ratio] in Urine"),
        Code("30000-4", LOINC, "Microalbumin/Creatinine [Ratio] in Urine"),
        Code("32294-1", LOINC, "Albumin/Creatinine [Ratio] in Urine"),
        Code("44292-1", LOINC, "Microalbumin/Creatinine [Mass Ratio] in 12 hour Urine"),
        Code("59159-4", LOINC, "Microalbumin/Creatinine [Ratio] in 24 hour Urine"),
        Code("76401-9", LOINC, "Albumin/Creatinine [Ratio] in 24 hour Urine"),
        Code("77253-3", LOINC, "Microalbumin/Creatinine [Ratio] in Urine by detection limit"),
        Code("77254-1", LOINC, "Microalbumin/Creatinine [Ratio] in Urine by detection limit"),
        Code("89998-1", LOINC, "Albumin/Creatinine [Molar ratio] in Urine"),
    ),
)

EGFR = observation(EGFR_LAB_TEST).where(is_laboratory_test_performed)
UACR = observation(UACR_LAB_TEST).where(is_laboratory_test_performed)

INITIAL_POPULATION = (
    age_between(18, 85)
    & IN_CARE
    & exists(condition(DIABETES).where(verified, lambda c: c.prevalence.overlaps_day(MP)))
)

KIDNEY_FAILURE = exists(
    condition(CKD_STAGE_5, END_STAGE_RENAL_DISEASE).where(
        verified, lambda c: c.prevalence.overlaps_day(MP)
    )
)
CKD5 = ("ckd5_esrd", KIDNEY_FAILURE)

NUMERATOR = exists(EGFR.where(lambda o: o.latest.during_day(last_months(12)))) & exists(
    UACR.where(lambda o: o.latest.during_day(last_months(12)))
)

MEASURE = Measure(
    id="DM-KIDNEY",
    title="Diabetes: Kidney Health Evaluation",
    url="urn:careloop:measure:DM-KIDNEY",
    version="1",
    closing=tuple(Closing(test, 12) for test in paired(EGFR, UACR)),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=HOSPICE[1] | PALLIATIVE[1] | KIDNEY_FAILURE,
            numerator=NUMERATOR,
            exclusion_reasons=(HOSPICE, PALLIATIVE, CKD5),
        ),
    ),
)
