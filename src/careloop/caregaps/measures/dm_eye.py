"""DM-EYE: diabetic eye exam, a retinal or dilated eye exam every year for patients
with diabetes aged 18 to 75 (a practice-defined gap; docs/caregaps.md, "Practice gaps").

Diabetes is the official value set (as in CMS122). The exam is any of:
- an eye care visit (the official "Ophthalmological Services" set: CPT 92002, 92004,
  92012, 92014 and their SNOMED CT concepts) — a diabetic's eye visit includes the
  dilated exam;
- the practice set "Diabetic Retinal Exam": retinal imaging (CPT 92250, 92227, 92228,
  92229), the CPT II result codes of a dilated exam or of retinal photographs
  (2022F-2026F, 2033F; 3072F: low risk, no retinopathy the year before), the SNOMED CT
  retinal exam procedures of CMS131's "Retinal or Dilated Eye Exam" most EHRs use,
  and LOINC 32451-7 (physical findings of the macula: the CMS "Macular Exam");
in the 12 months up to the end of the period. Unlike CMS131, a negative exam does not
count for two years: the practice wants a yearly exam.
"""

from __future__ import annotations

from careloop.caregaps.dsl import CPT, LOINC, MP, SNOMED, Code, age_between, exists, valueset
from careloop.caregaps.library import (
    FRAILTY,
    HOSPICE,
    PALLIATIVE,
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
from careloop.caregaps.practice import IN_CARE, last_months
from careloop.caregaps.valuesets_local import local_valueset

DIABETES = valueset("Diabetes", "2.16.840.1.113883.3.464.1003.103.12.1001")
OPHTHALMOLOGICAL_SERVICES = valueset("Ophthalmological Services", "2.16.840.1.113883.3.526.3.1285")
DIABETIC_RETINAL_EXAM = local_valueset(
    "Diabetic Retinal Exam",
    2,
    (
        Code("92250", CPT, "Fundus photography with interpretation and report"),
        Code("92227", CPT, "Imaging of retina for detection of disease, remote, with review"),
        Code("92228", CPT, "Imaging of retina for detection of disease, remote, with report"),
        Code("92229", CPT, "Imaging of retina for detection of disease, point-of-care"),
        Code("2022F", CPT, "Dilated retinal eye exam reviewed; with evidence of retinopathy"),
        Code("2023F", CPT, "Dilated retinal eye exam reviewed; without retinopathy"),
        Code("2024F", CPT, "7 standard field stereoscopic photos; with retinopathy"),
        Code("2025F", CPT, "7 standard field stereoscopic photos; without retinopathy"),
        Code("2026F", CPT, "Eye imaging validated to match diagnosis; with retinopathy"),
        Code("2033F", CPT, "Eye imaging validated to match diagnosis; without retinopathy"),
        Code("3072F", CPT, "Low risk for retinopathy (no evidence in the prior year)"),
        Code("722161008", SNOMED, "Diabetic retinal eye exam (procedure)"),
        Code("274798009", SNOMED, "Examination of retina (procedure)"),
        Code("427478009", SNOMED, "Evaluation of retina (procedure)"),
        Code("308110009", SNOMED, "Direct fundoscopy following mydriatic (procedure)"),
        Code("314971001", SNOMED, "Camera fundoscopy (procedure)"),
        Code("314972008", SNOMED, "Indirect fundoscopy following mydriatic (procedure)"),
        Code("410451008", SNOMED, "Indirect ophthalmoscopy (procedure)"),
        Code("410453006", SNOMED, "Binocular indirect ophthalmoscopy (procedure)"),
        Code("410455004", SNOMED, "Slit lamp fundus examination (procedure)"),
        Code("32451-7", LOINC, "Physical findings of Macula"),
    ),
)

EYE_VISIT = encounter(OPHTHALMOLOGICAL_SERVICES).where(is_encounter_performed)
EXAM_PROCEDURE = procedure(DIABETIC_RETINAL_EXAM).where(is_procedure_performed)
EXAM_OBSERVATION = observation(DIABETIC_RETINAL_EXAM).where(is_laboratory_test_performed)
EXAMS = (EYE_VISIT, EXAM_PROCEDURE, EXAM_OBSERVATION)

INITIAL_POPULATION = (
    age_between(18, 75)
    & IN_CARE
    & exists(condition(DIABETES).where(verified, lambda c: c.prevalence.overlaps_day(MP)))
)

NUMERATOR = (
    exists(EYE_VISIT.where(lambda e: e.latest.during_day(last_months(12))))
    | exists(EXAM_PROCEDURE.where(lambda p: p.latest.during_day(last_months(12))))
    | exists(EXAM_OBSERVATION.where(lambda o: o.latest.during_day(last_months(12))))
)

MEASURE = Measure(
    id="DM-EYE",
    title="Diabetes: Eye Exam",
    url="urn:careloop:measure:DM-EYE",
    version="1",
    closing=tuple(Closing(exam, 12) for exam in EXAMS),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=HOSPICE[1] | PALLIATIVE[1] | FRAILTY[1],
            numerator=NUMERATOR,
            exclusion_reasons=(HOSPICE, PALLIATIVE, FRAILTY),
        ),
    ),
)
