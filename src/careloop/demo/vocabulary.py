"""The real code lists the synthetic practice uses: SNOMED CT, ICD-10-CM, LOINC, CPT,
HCPCS, CVX and RxNorm codes, exactly as the published code systems spell them.

Quality measures and value sets downstream match on these codes, so a demo practice
built on made-up codes would exercise nothing. Displays follow each system's own
preferred term (shortened where the official one is long).
"""

from __future__ import annotations

from dataclasses import dataclass

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CVX = "http://hl7.org/fhir/sid/cvx"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
NUCC = "http://nucc.org/provider-taxonomy"


@dataclass(frozen=True, slots=True)
class Code:
    system: str
    code: str
    display: str


@dataclass(frozen=True, slots=True)
class ConditionCodes:
    """A chronic condition as a problem-list entry: SNOMED CT plus its ICD-10-CM code."""

    key: str
    snomed: Code
    icd10: Code


def _cond(key: str, snomed: str, snomed_display: str, icd: str, icd_display: str) -> ConditionCodes:
    return ConditionCodes(
        key, Code(SNOMED, snomed, snomed_display), Code(ICD10CM, icd, icd_display)
    )


HYPERTENSION = _cond(
    "hypertension", "59621000", "Essential hypertension", "I10", "Essential (primary) hypertension"
)
DIABETES_T2 = _cond(
    "diabetes",
    "44054006",
    "Diabetes mellitus type 2",
    "E11.9",
    "Type 2 diabetes mellitus without complications",
)
HYPERLIPIDEMIA = _cond(
    "hyperlipidemia", "55822004", "Hyperlipidemia", "E78.5", "Hyperlipidemia, unspecified"
)
DEPRESSION = _cond(
    "depression",
    "370143000",
    "Major depressive disorder",
    "F32.9",
    "Major depressive disorder, single episode, unspecified",
)
ASTHMA = _cond("asthma", "195967001", "Asthma", "J45.909", "Unspecified asthma, uncomplicated")
CKD3 = _cond(
    "ckd",
    "433144002",
    "Chronic kidney disease stage 3",
    "N18.30",
    "Chronic kidney disease, stage 3 unspecified",
)
OBESITY = _cond("obesity", "414916001", "Obesity", "E66.9", "Obesity, unspecified")
PREDIABETES = _cond("prediabetes", "714628002", "Prediabetes", "R73.03", "Prediabetes")

CONDITIONS = (
    HYPERTENSION,
    DIABETES_T2,
    HYPERLIPIDEMIA,
    DEPRESSION,
    ASTHMA,
    CKD3,
    OBESITY,
    PREDIABETES,
)

# --- observations (LOINC) and their UCUM units -------------------------------------------
BP_PANEL = Code(LOINC, "85354-9", "Blood pressure panel with all children optional")
BP_SYSTOLIC = Code(LOINC, "8480-6", "Systolic blood pressure")
BP_DIASTOLIC = Code(LOINC, "8462-4", "Diastolic blood pressure")
BMI = Code(LOINC, "39156-5", "Body mass index (BMI) [Ratio]")
BODY_WEIGHT = Code(LOINC, "29463-7", "Body weight")
HBA1C = Code(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")
PHQ9 = Code(LOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score")
TOBACCO = Code(LOINC, "72166-2", "Tobacco smoking status")
FIT = Code(LOINC, "29771-3", "Hemoglobin.gastrointestinal.lower [Presence] in Stool by Immunoassay")
CERVICAL_CYTOLOGY = Code(
    LOINC, "10524-7", "Microscopic observation [Identifier] in Cervix by Cyto stain"
)
HPV_TEST = Code(
    LOINC, "71431-1", "HPV I/H risk 1 DNA [Presence] in Cervix by NAA with probe detection"
)
MAMMOGRAPHY_REPORT = Code(LOINC, "24606-6", "MG Breast Screening")

UNIT_MMHG = "mm[Hg]"
UNIT_BMI = "kg/m2"
UNIT_PERCENT = "%"
UNIT_SCORE = "{score}"

# Smoking status answers (SNOMED CT), as US Core's smoking-status value set lists them.
NEVER_SMOKER = Code(SNOMED, "266919005", "Never smoked tobacco")
EX_SMOKER = Code(SNOMED, "8517006", "Ex-smoker")
CURRENT_SMOKER = Code(SNOMED, "77176002", "Smoker")

NEGATIVE = Code(SNOMED, "260385009", "Negative")
POSITIVE = Code(SNOMED, "10828004", "Positive")
NILM = Code(SNOMED, "373887005", "Negative for intraepithelial lesion or malignancy")

# --- procedures --------------------------------------------------------------------------
MAMMOGRAPHY = Code(CPT, "77067", "Screening mammography, bilateral, including CAD")
COLONOSCOPY = Code(CPT, "45378", "Colonoscopy, flexible; diagnostic")

# --- immunizations (CVX) -------------------------------------------------------------------
FLU_140 = Code(CVX, "140", "Influenza, seasonal, injectable, preservative free")
FLU_150 = Code(CVX, "150", "Influenza, injectable, quadrivalent, preservative free")
FLU_158 = Code(CVX, "158", "Influenza, injectable, quadrivalent, contains preservative")
FLU_VACCINES = (FLU_140, FLU_150, FLU_158)
DTAP = Code(CVX, "20", "DTaP")
IPV = Code(CVX, "10", "IPV")
MMR = Code(CVX, "03", "MMR")
HIB_PRP_OMP = Code(CVX, "49", "Hib (PRP-OMP)")
HIB_PRP_T = Code(CVX, "17", "Hib, unspecified formulation")
HEPB_PEDS = Code(CVX, "08", "Hep B, adolescent or pediatric")
VARICELLA = Code(CVX, "21", "Varicella")
PCV13 = Code(CVX, "133", "Pneumococcal conjugate PCV 13")
HEPA_PEDS = Code(CVX, "83", "Hep A, ped/adol, 2 dose")
ROTAVIRUS_RV1 = Code(CVX, "119", "Rotavirus, monovalent")
ROTAVIRUS_RV5 = Code(CVX, "116", "Rotavirus, pentavalent")
ZOSTER_RECOMBINANT = Code(CVX, "187", "Zoster vaccine recombinant")
TDAP = Code(CVX, "115", "Tdap")

# The CDC childhood schedule, as (vaccine, age in days at the dose) for each dose.
CHILDHOOD_SCHEDULE: tuple[tuple[Code, int], ...] = (
    (HEPB_PEDS, 0),
    (HEPB_PEDS, 60),
    (HEPB_PEDS, 180),
    (DTAP, 60),
    (DTAP, 120),
    (DTAP, 180),
    (DTAP, 455),
    (DTAP, 1642),
    (IPV, 60),
    (IPV, 120),
    (IPV, 180),
    (IPV, 1642),
    (PCV13, 60),
    (PCV13, 120),
    (PCV13, 180),
    (PCV13, 365),
    (MMR, 365),
    (MMR, 1642),
    (VARICELLA, 365),
    (VARICELLA, 1642),
    (HEPA_PEDS, 365),
    (HEPA_PEDS, 547),
)
HIB_SCHEDULE_DAYS = (60, 120, 365)
ROTAVIRUS_SCHEDULE_DAYS = (60, 120)

# --- medications (RxNorm clinical drugs) ---------------------------------------------------
METFORMIN = Code(
    RXNORM, "860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"
)
LISINOPRIL = Code(RXNORM, "314076", "lisinopril 10 MG Oral Tablet")
ATORVASTATIN = Code(RXNORM, "617312", "atorvastatin 10 MG Oral Tablet")
SERTRALINE = Code(RXNORM, "312940", "sertraline 50 MG Oral Tablet")
ALBUTEROL = Code(RXNORM, "745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler")

# Which condition usually brings which first-line medication, and how often it is on file.
MEDICATION_FOR = {
    "diabetes": (METFORMIN, 0.75),
    "hypertension": (LISINOPRIL, 0.55),
    "hyperlipidemia": (ATORVASTATIN, 0.6),
    "depression": (SERTRALINE, 0.45),
    "asthma": (ALBUTEROL, 0.8),
}

# --- visits (CPT / HCPCS) ----------------------------------------------------------------
# Preventive medicine codes by age band: (upper age exclusive, new-patient, established).
PREVENTIVE_BY_AGE = (
    (1, "99381", "99391"),
    (5, "99382", "99392"),
    (12, "99383", "99393"),
    (18, "99384", "99394"),
    (40, "99385", "99395"),
    (65, "99386", "99396"),
    (200, "99387", "99397"),
)
VISIT_DISPLAYS = {
    "99202": "Office visit, new patient, straightforward MDM",
    "99203": "Office visit, new patient, low MDM",
    "99204": "Office visit, new patient, moderate MDM",
    "99205": "Office visit, new patient, high MDM",
    "99211": "Office visit, established patient, minimal",
    "99212": "Office visit, established patient, straightforward MDM",
    "99213": "Office visit, established patient, low MDM",
    "99214": "Office visit, established patient, moderate MDM",
    "99215": "Office visit, established patient, high MDM",
    "99381": "Initial preventive visit, infant",
    "99382": "Initial preventive visit, age 1-4",
    "99383": "Initial preventive visit, age 5-11",
    "99384": "Initial preventive visit, age 12-17",
    "99385": "Initial preventive visit, age 18-39",
    "99386": "Initial preventive visit, age 40-64",
    "99387": "Initial preventive visit, age 65+",
    "99391": "Periodic preventive visit, infant",
    "99392": "Periodic preventive visit, age 1-4",
    "99393": "Periodic preventive visit, age 5-11",
    "99394": "Periodic preventive visit, age 12-17",
    "99395": "Periodic preventive visit, age 18-39",
    "99396": "Periodic preventive visit, age 40-64",
    "99397": "Periodic preventive visit, age 65+",
    "G0438": "Annual wellness visit, initial",
    "G0439": "Annual wellness visit, subsequent",
}


def visit_code(code: str) -> Code:
    """The CPT or HCPCS coding of a visit code (HCPCS level II codes start with a letter)."""
    system = HCPCS if code[:1].isalpha() else CPT
    return Code(system, code, VISIT_DISPLAYS.get(code, code))


# --- referral specialties ------------------------------------------------------------------
# NUCC taxonomy codes for the specialties referrals go to and providers practise.
SPECIALTY_TAXONOMY = {
    "Family Medicine": "207Q00000X",
    "Internal Medicine": "207R00000X",
    "Pediatrics": "208000000X",
    "Nurse Practitioner, Family": "363LF0000X",
    "Physician Assistant, Medical": "363AM0700X",
    "Cardiology": "207RC0000X",
    "Endocrinology": "207RE0101X",
    "Nephrology": "207RN0300X",
    "Psychiatry": "2084P0800X",
    "Pulmonology": "207RP1001X",
    "Gastroenterology": "207RG0100X",
    "Orthopaedic Surgery": "207X00000X",
    "Dermatology": "207N00000X",
}
REFERRAL_SPECIALTY_FOR = {
    "hypertension": "Cardiology",
    "diabetes": "Endocrinology",
    "ckd": "Nephrology",
    "depression": "Psychiatry",
    "asthma": "Pulmonology",
}
