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
# HCPCS Level II as the eCQM value sets (VSAC) spell its system: measures match on it.
HCPCS = "http://www.nlm.nih.gov/research/umls/hcpcs"
CVX = "http://hl7.org/fhir/sid/cvx"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
NUCC = "http://nucc.org/provider-taxonomy"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


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

# Problem-list entries that exclude a patient from a quality measure (hospice, palliative
# care, frailty with advanced illness, absent organs...): rare, but every panel has them.
PALLIATIVE = _cond(
    "palliative",
    "305686008",
    "Seen by palliative care physician",
    "Z51.5",
    "Encounter for palliative care",
)
DEMENTIA = _cond(
    "dementia",
    "52448006",
    "Dementia",
    "F03.90",
    "Unspecified dementia, unspecified severity, without behavioral disturbance",
)
HEART_FAILURE = _cond(
    "heart_failure", "84114007", "Heart failure", "I50.9", "Heart failure, unspecified"
)
FAILURE_TO_THRIVE = _cond(
    "failure_to_thrive",
    "129588001",
    "Adult failure to thrive syndrome",
    "R62.7",
    "Adult failure to thrive",
)
BILATERAL_MASTECTOMY_HISTORY = _cond(
    "bilateral_mastectomy",
    "428529004",
    "History of bilateral mastectomy",
    "Z90.13",
    "Acquired absence of bilateral breasts and nipples",
)
HYSTERECTOMY_HISTORY = _cond(
    "hysterectomy",
    "428078001",
    "History of total hysterectomy",
    "Z90.710",
    "Acquired absence of both cervix and uterus",
)
COLON_CANCER = _cond(
    "colon_cancer",
    "363406005",
    "Malignant neoplasm of colon",
    "C18.9",
    "Malignant neoplasm of colon, unspecified",
)
ESRD = _cond("esrd", "46177005", "End-stage renal disease", "N18.6", "End stage renal disease")
PREGNANCY = _cond("pregnancy", "77386006", "Pregnancy", "Z33.1", "Pregnant state, incidental")
BIPOLAR = _cond("bipolar", "13746004", "Bipolar disorder", "F31.9", "Bipolar disorder, unspecified")
OVERWEIGHT = Code(SNOMED, "238131007", "Overweight")
TOBACCO_DEPENDENCE = Code(ICD10CM, "F17.210", "Nicotine dependence, cigarettes, uncomplicated")
UNDERWEIGHT = Code(SNOMED, "248342006", "Underweight")

CONDITIONS = (
    HYPERTENSION,
    DIABETES_T2,
    HYPERLIPIDEMIA,
    DEPRESSION,
    ASTHMA,
    CKD3,
    OBESITY,
    PREDIABETES,
    PALLIATIVE,
    FAILURE_TO_THRIVE,
    DEMENTIA,
    HEART_FAILURE,
    BILATERAL_MASTECTOMY_HISTORY,
    HYSTERECTOMY_HISTORY,
    COLON_CANCER,
    ESRD,
    PREGNANCY,
    BIPOLAR,
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
TOMOSYNTHESIS_REPORT = Code(LOINC, "72142-3", "DBT Breast - bilateral screening")
FIT_DNA = Code(
    LOINC,
    "77354-9",
    "Noninvasive colorectal cancer DNA and occult blood screening [Presence] in Stool",
)
DEPRESSION_SCREEN_ADULT = Code(LOINC, "73832-8", "Adult depression screening assessment")
DEPRESSION_SCREEN_ADOLESCENT = Code(LOINC, "73831-0", "Adolescent depression screening assessment")
HOUSING_STATUS = Code(LOINC, "71802-3", "Housing status")
EGFR_CKD_EPI_2021 = Code(
    LOINC,
    "98979-8",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or "
    "Blood by Creatinine-based formula (CKD-EPI 2021)",
)
EGFR_CKD_EPI = Code(
    LOINC,
    "62238-1",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or "
    "Blood by Creatinine-based formula (CKD-EPI)",
)
UACR = Code(LOINC, "9318-7", "Albumin/Creatinine [Mass Ratio] in Urine")
MICROALBUMIN_RATIO = Code(LOINC, "14959-1", "Microalbumin/Creatinine [Mass Ratio] in Urine")
UNIT_EGFR = "mL/min/{1.73_m2}"
UNIT_UACR = "mg/g{creat}"

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
SCREEN_NEGATIVE = Code(SNOMED, "428171000124102", "Depression screening negative")
SCREEN_POSITIVE = Code(SNOMED, "428181000124104", "Depression screening positive")
LIVES_IN_NURSING_HOME = Code(SNOMED, "160734000", "Lives in nursing home")

# --- procedures --------------------------------------------------------------------------
MAMMOGRAPHY = Code(CPT, "77067", "Screening mammography, bilateral, including CAD")
COLONOSCOPY = Code(CPT, "45378", "Colonoscopy, flexible; diagnostic")
COLONOSCOPY_SNOMED = Code(SNOMED, "444783004", "Screening colonoscopy")
TOTAL_HYSTERECTOMY = Code(SNOMED, "116140006", "Total hysterectomy")
# Follow-up of an above- or below-normal BMI (CMS69), done at the visit, with its reason.
EXERCISE_ENCOURAGEMENT = Code(SNOMED, "304549008", "Giving encouragement to exercise")
DIET_EDUCATION = Code(SNOMED, "443288003", "Lifestyle education regarding diet")
DIET_EDUCATION_FOR_DISORDER = Code(SNOMED, "304491008", "Dietary education for disorder")
# Follow-up of a positive depression screen (CMS2).
COPING_SUPPORT = Code(SNOMED, "385724002", "Coping support management")
MENTAL_HEALTH_COUNSELING_REFERRAL = Code(
    SNOMED, "306227000", "Referral for mental health counseling"
)
# Tobacco cessation (CMS138).
CESSATION_COUNSELING = Code(
    CPT, "99406", "Smoking and tobacco use cessation counseling visit, 3-10 minutes"
)
CESSATION_EDUCATION = Code(SNOMED, "225323000", "Smoking cessation education")
# Diabetic eye exam as the EHR records the eye doctor's report (CPT II) or a retinal
# photograph taken in the clinic.
RETINAL_EXAM_NO_RETINOPATHY = Code(
    CPT, "2023F", "Dilated retinal eye exam reviewed; without evidence of retinopathy"
)
RETINAL_EXAM_RETINOPATHY = Code(
    CPT, "2022F", "Dilated retinal eye exam reviewed; with evidence of retinopathy"
)
FUNDUS_PHOTOGRAPHY = Code(CPT, "92250", "Fundus photography with interpretation and report")
HOSPICE_ADMISSION = Code(SNOMED, "183920000", "Routine admission to hospice")

# --- immunizations (CVX) -------------------------------------------------------------------
FLU_140 = Code(CVX, "140", "Influenza, seasonal, injectable, preservative free")
FLU_150 = Code(CVX, "150", "Influenza, injectable, quadrivalent, preservative free")
FLU_158 = Code(CVX, "158", "Influenza, injectable, quadrivalent, contains preservative")
FLU_VACCINES = (FLU_140, FLU_150, FLU_158)
DTAP = Code(CVX, "20", "DTaP")
IPV = Code(CVX, "10", "IPV")
MMR = Code(CVX, "03", "MMR")
HIB_PRP_OMP = Code(CVX, "49", "Hib (PRP-OMP)")
HIB_PRP_T = Code(CVX, "48", "Hib (PRP-T)")
HEPB_PEDS = Code(CVX, "08", "Hep B, adolescent or pediatric")
VARICELLA = Code(CVX, "21", "Varicella")
PCV13 = Code(CVX, "133", "Pneumococcal conjugate PCV 13")
HEPA_PEDS = Code(CVX, "83", "Hep A, ped/adol, 2 dose")
ROTAVIRUS_RV1 = Code(CVX, "119", "Rotavirus, monovalent")
ROTAVIRUS_RV5 = Code(CVX, "116", "Rotavirus, pentavalent")
FLU_HIGH_DOSE = Code(CVX, "197", "Influenza, high-dose, quadrivalent")
FLU_ADJUVANTED = Code(CVX, "205", "Influenza, seasonal vaccine, quadrivalent, adjuvanted")
FLU_RECOMBINANT = Code(CVX, "185", "Influenza, recombinant, quadrivalent, preservative free")
FLU_SENIOR_VACCINES = (FLU_HIGH_DOSE, FLU_ADJUVANTED, FLU_RECOMBINANT)
FLU_PEDIATRIC = Code(
    CVX, "161", "Influenza, injectable, quadrivalent, preservative free, pediatric"
)
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
    (MMR, 366),
    (MMR, 1642),
    (VARICELLA, 366),
    (VARICELLA, 1642),
    (HEPA_PEDS, 366),
    (HEPA_PEDS, 547),
)
# Hib: PRP-OMP is a three-dose series, PRP-T a four-dose one (CDC schedule).
HIB_PRP_OMP_DAYS = (60, 120, 366)
HIB_PRP_T_DAYS = (60, 120, 180, 366)
ROTAVIRUS_SCHEDULE_DAYS = (60, 120)

# --- medications (RxNorm clinical drugs) ---------------------------------------------------
METFORMIN = Code(
    RXNORM, "860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"
)
LISINOPRIL = Code(RXNORM, "314076", "lisinopril 10 MG Oral Tablet")
ATORVASTATIN = Code(RXNORM, "617312", "atorvastatin 10 MG Oral Tablet")
SERTRALINE = Code(RXNORM, "312940", "sertraline 50 MG Oral Tablet")
ALBUTEROL = Code(RXNORM, "745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler")
VARENICLINE = Code(RXNORM, "636676", "varenicline 1 MG Oral Tablet")
NICOTINE_GUM = Code(RXNORM, "314119", "nicotine 2 MG Chewing Gum")

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


# A referral is a ServiceRequest of this category; its status in FHIR's terms.
PATIENT_REFERRAL = Code(SNOMED, "3457005", "Patient referral")
REFERRAL_FHIR_STATUS = {
    "sent": "active",
    "scheduled": "active",
    "completed": "completed",
    "closed": "completed",
    "cancelled": "revoked",
}

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
