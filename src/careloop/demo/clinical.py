"""The clinical picture of a demo patient: chronic conditions at realistic prevalence,
the observations recorded at visits, cancer screenings, immunizations and medications.

Prevalences follow the CDC's published US adult figures by age band (hypertension
~30% of adults, rising to about half over 60; diabetes ~11%; obesity ~40%; CKD stage 3
~6%); screening completion sits at 60-75% so that care gaps exist to be found.

Everything is coded as an EHR sends it to a quality program, so that the CMS eCQMs and
the practice gaps (careloop.caregaps.measures) read believable rates off the practice:
a mammogram is an imaging Observation (LOINC, the Mammography value set), screenings
and assessments are `survey` Observations with coded answers, follow-ups carry their
reason, and the rare facts that exclude a patient from a measure (hospice, palliative
care, frailty with advanced illness, mastectomy, hysterectomy...) occur at small
realistic rates.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass

from careloop.demo import vocabulary as v
from careloop.demo.people import new_uuid
from careloop.demo.records import Component, FactRec

UTC = datetime.UTC


def at_noon(day: datetime.date) -> datetime.datetime:
    """Facts known only by date (historic screenings, onsets) are placed at 12:00 UTC."""
    return datetime.datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def _days_ago(rng: random.Random, as_of: datetime.date, low: int, high: int) -> datetime.date:
    return as_of - datetime.timedelta(days=rng.randint(low, high))


def _prevalence(key: str, *, age: int, has: set[str]) -> float:
    if key == "hypertension":
        base = 0.0 if age < 18 else 0.07 if age < 40 else 0.25 if age < 60 else 0.48
        return base * (1.3 if "obesity" in has else 1.0)
    if key == "diabetes":
        base = 0.003 if age < 18 else 0.03 if age < 45 else 0.1 if age < 65 else 0.18
        return base * (1.8 if "obesity" in has else 0.7)
    if key == "hyperlipidemia":
        return 0.0 if age < 20 else 0.1 if age < 40 else 0.3 if age < 65 else 0.45
    if key == "depression":
        return 0.0 if age < 12 else 0.04 if age < 18 else 0.09
    if key == "asthma":
        return 0.0 if age < 2 else 0.08
    if key == "ckd":
        base = 0.0 if age < 30 else 0.015 if age < 65 else 0.09
        return base * (2.0 if "diabetes" in has else 1.0) * (1.5 if "hypertension" in has else 1.0)
    if key == "prediabetes":
        return 0.0 if age < 18 or "diabetes" in has else 0.15 if age < 45 else 0.25
    return 0.0


def draw_conditions(
    rng: random.Random, *, age: int, birth: datetime.date, as_of: datetime.date
) -> dict[str, datetime.date]:
    """Condition key -> onset date. Order matters: obesity raises hypertension and
    diabetes, which raise CKD."""
    has: dict[str, datetime.date] = {}
    if age >= 2 and rng.random() < (0.2 if age < 18 else 0.4):
        has["obesity"] = birth
    order = (
        "hypertension",
        "diabetes",
        "hyperlipidemia",
        "depression",
        "asthma",
        "ckd",
        "prediabetes",
    )
    for key in order:
        if rng.random() < _prevalence(key, age=age, has=set(has)):
            has[key] = birth
    for key in has:
        # Onset somewhere in the last decade, never before age 2 (age 18 for adult-onset).
        earliest = birth + datetime.timedelta(
            days=730 if key in ("asthma", "obesity") else 18 * 365
        )
        earliest = max(earliest, as_of - datetime.timedelta(days=3650), birth)
        span = max((as_of - earliest).days, 1)
        has[key] = earliest + datetime.timedelta(days=rng.randint(0, span - 1))
    return has


def condition_facts(rng: random.Random, conditions: dict[str, datetime.date]) -> list[FactRec]:
    by_key = {c.key: c for c in v.CONDITIONS}
    return [
        FactRec(
            new_uuid(rng),
            "condition",
            by_key[key].snomed,
            "active",
            "problem-list-item",
            at_noon(onset),
            alt=by_key[key].icd10,
        )
        for key, onset in conditions.items()
    ]


def medication_facts(
    rng: random.Random, conditions: dict[str, datetime.date], *, as_of: datetime.date
) -> list[FactRec]:
    facts: list[FactRec] = []
    for key, onset in conditions.items():
        choice = v.MEDICATION_FOR.get(key)
        if choice is None or rng.random() >= choice[1]:
            continue
        start = onset + datetime.timedelta(days=rng.randint(0, 60))
        start = min(start, as_of)
        stopped = rng.random() < 0.1
        end = at_noon(min(as_of, start + datetime.timedelta(days=rng.randint(90, 700))))
        facts.append(
            FactRec(
                new_uuid(rng),
                "medication",
                choice[0],
                "stopped" if stopped else "active",
                "community",
                at_noon(start),
                end=end if stopped else None,
            )
        )
    return facts


@dataclass(frozen=True, slots=True)
class Profile:
    """What stays the same about a patient from visit to visit: body mass index,
    whether their hypertension is controlled, their smoking status, how their clinic
    follows up."""

    bmi: float
    bp_controlled: bool
    smoking: v.Code
    follows_up: float  # chance a clinician acts on an abnormal screen at a visit


def draw_profile(rng: random.Random, *, age: int, conditions: dict[str, datetime.date]) -> Profile:
    if "obesity" in conditions:
        bmi = rng.uniform(30.0, 42.0)
    else:
        # NHANES: about a third of US adults are overweight (25-30) without obesity.
        bmi = max(17.6, min(rng.gauss(25.3, 2.7), 29.8))
    return Profile(
        bmi=round(bmi, 1),
        # About two in three treated hypertensives are controlled below 140/90.
        bp_controlled=rng.random() < 0.68,
        smoking=draw_smoking(rng, age=age),
        follows_up=rng.uniform(0.3, 0.8),
    )


def vitals_at_visit(
    rng: random.Random,
    *,
    when: datetime.datetime,
    age: int,
    conditions: dict[str, datetime.date],
    profile: Profile,
    encounter: FactRec,
    bmi: bool,
) -> list[FactRec]:
    """Blood pressure at every adult in-person visit, recorded as one panel; the body
    mass index (from the measured height and weight) at most of them."""
    if age < 18:
        return []
    if "hypertension" not in conditions:
        systolic_mean, diastolic_mean = 110 + 0.35 * (age - 18), 72.0
    elif profile.bp_controlled:
        systolic_mean, diastolic_mean = 124 + 0.1 * (age - 40), 76.0
    else:
        systolic_mean, diastolic_mean = 148 + 0.1 * (age - 40), 88.0
    systolic = max(88, min(210, round(rng.gauss(systolic_mean, 9))))
    diastolic = max(50, min(125, round(rng.gauss(diastolic_mean, 7)), systolic - 20))
    components = (
        Component(v.BP_SYSTOLIC, float(systolic), v.UNIT_MMHG),
        Component(v.BP_DIASTOLIC, float(diastolic), v.UNIT_MMHG),
    )
    facts = [_observation(rng, v.BP_PANEL, "vital-signs", when, encounter, components=components)]
    if bmi:
        value = round(profile.bmi + rng.uniform(-0.4, 0.4), 1)
        facts.append(
            _observation(rng, v.BMI, "vital-signs", when, encounter, value=value, unit=v.UNIT_BMI)
        )
        if (value >= 25 or value < 18.5) and rng.random() < profile.follows_up:
            facts.append(_bmi_follow_up(rng, when=when, bmi=value, encounter=encounter))
    return facts


def _bmi_follow_up(
    rng: random.Random, *, when: datetime.datetime, bmi: float, encounter: FactRec
) -> FactRec:
    """Counselling on diet or exercise for an abnormal BMI, with the reason it was given."""
    if bmi < 18.5:
        code, reason = v.DIET_EDUCATION_FOR_DISORDER, v.UNDERWEIGHT
    else:
        code = v.EXERCISE_ENCOURAGEMENT if rng.random() < 0.5 else v.DIET_EDUCATION
        reason = v.OBESITY.snomed if bmi >= 30 else v.OVERWEIGHT
    return _procedure(rng, code, when + datetime.timedelta(minutes=5), encounter, reason=reason)


def _procedure(
    rng: random.Random,
    code: v.Code,
    when: datetime.datetime,
    encounter: FactRec | None,
    *,
    reason: v.Code | None = None,
    alt: v.Code | None = None,
) -> FactRec:
    return FactRec(
        new_uuid(rng),
        "procedure",
        code,
        "completed",
        "",
        when,
        alt=alt,
        reason=reason,
        encounter_id=encounter.id if encounter else None,
        provider_id=encounter.provider_id if encounter else None,
    )


def _request(
    rng: random.Random,
    kind: str,
    code: v.Code,
    when: datetime.datetime,
    encounter: FactRec,
    *,
    reason: v.Code | None = None,
) -> FactRec:
    """An order placed at the end of a visit: a medication or a referral."""
    return FactRec(
        new_uuid(rng),
        kind,
        code,
        "active",
        "community" if kind == "medication" else "",
        when,
        reason=reason,
        intent="order",
        encounter_id=encounter.id,
        provider_id=encounter.provider_id,
    )


def _observation(
    rng: random.Random,
    code: v.Code,
    category: str,
    when: datetime.datetime,
    encounter: FactRec | None,
    *,
    value: float | None = None,
    unit: str = "",
    value_code: v.Code | None = None,
    components: tuple[Component, ...] = (),
    also_category: str = "",
) -> FactRec:
    return FactRec(
        new_uuid(rng),
        "observation",
        code,
        "final",
        category,
        when,
        value_num=value,
        unit=unit,
        value_code=value_code,
        components=components,
        encounter_id=encounter.id if encounter else None,
        provider_id=encounter.provider_id if encounter else None,
        also_category=also_category,
    )


def screenings_at_visit(
    rng: random.Random,
    *,
    when: datetime.datetime,
    age: int,
    conditions: dict[str, datetime.date],
    profile: Profile,
    encounter: FactRec,
    preventive: bool,
    in_person: bool,
) -> list[FactRec]:
    """What a visit screens for: depression (PHQ-9 with its coded result) and tobacco
    use, always at a preventive visit, often at an office visit; with the follow-up a
    positive screen or a smoker gets, when the clinician documents one."""
    facts: list[FactRec] = []
    if age < 12:
        return facts
    chance = 0.92 if preventive else 0.3 if in_person else 0.12
    if rng.random() < chance:
        facts += _depression_screen(
            rng, when=when, age=age, conditions=conditions, profile=profile, encounter=encounter
        )
    chance = 0.97 if preventive else 0.5 if in_person else 0.25
    if rng.random() < chance:
        # Smoking status is social history in US Core and a screening assessment to the
        # measures: the resource carries both categories.
        facts.append(
            _observation(
                rng,
                v.TOBACCO,
                "survey",
                when,
                encounter,
                value_code=profile.smoking,
                also_category="social-history",
            )
        )
        if profile.smoking is v.CURRENT_SMOKER:
            facts += _cessation(rng, when=when, profile=profile, encounter=encounter)
    return facts


def _depression_screen(
    rng: random.Random,
    *,
    when: datetime.datetime,
    age: int,
    conditions: dict[str, datetime.date],
    profile: Profile,
    encounter: FactRec,
) -> list[FactRec]:
    if "depression" in conditions:
        score = rng.randint(3, 22)
    else:
        score = min(27, int(rng.expovariate(0.45)))
    positive = score >= 10
    screen = v.DEPRESSION_SCREEN_ADULT if age >= 18 else v.DEPRESSION_SCREEN_ADOLESCENT
    facts = [
        _observation(rng, v.PHQ9, "survey", when, encounter, value=float(score), unit=v.UNIT_SCORE),
        _observation(
            rng,
            screen,
            "survey",
            when,
            encounter,
            value_code=v.SCREEN_POSITIVE if positive else v.SCREEN_NEGATIVE,
        ),
    ]
    if positive and rng.random() < profile.follows_up + 0.15:
        if rng.random() < 0.6:
            facts.append(
                _procedure(rng, v.COPING_SUPPORT, when + datetime.timedelta(minutes=10), encounter)
            )
        else:
            facts.append(
                _request(
                    rng,
                    "service_request",
                    v.MENTAL_HEALTH_COUNSELING_REFERRAL,
                    encounter.end or when,
                    encounter,
                    reason=v.DEPRESSION.snomed,
                )
            )
    return facts


def _cessation(
    rng: random.Random, *, when: datetime.datetime, profile: Profile, encounter: FactRec
) -> list[FactRec]:
    """Cessation counselling for a smoker, sometimes with a prescription."""
    facts: list[FactRec] = []
    if rng.random() < profile.follows_up:
        code = v.CESSATION_COUNSELING if rng.random() < 0.6 else v.CESSATION_EDUCATION
        facts.append(_procedure(rng, code, when + datetime.timedelta(minutes=8), encounter))
        if rng.random() < 0.3:
            drug = v.VARENICLINE if rng.random() < 0.6 else v.NICOTINE_GUM
            facts.append(
                _request(
                    rng,
                    "medication",
                    drug,
                    encounter.end or when,
                    encounter,
                    reason=v.TOBACCO_DEPENDENCE,
                )
            )
    return facts


def draw_smoking(rng: random.Random, *, age: int) -> v.Code:
    roll = rng.random()
    if age >= 18 and roll < 0.12:
        return v.CURRENT_SMOKER
    if age >= 25 and roll < 0.32:
        return v.EX_SMOKER
    return v.NEVER_SMOKER


def lab_draw(
    rng: random.Random,
    *,
    when: datetime.datetime,
    conditions: dict[str, datetime.date],
    encounter: FactRec | None,
) -> list[FactRec]:
    """A blood draw for glycemic status: the HbA1c (last in the list, the caller dates
    the next draw by it), with the kidney function tests ordered alongside: an eGFR
    from the metabolic panel most times, a urine albumin-creatinine ratio for a
    diabetic about once a year (ADA: both yearly; in practice uACR is often missed)."""
    facts: list[FactRec] = []
    diabetic = "diabetes" in conditions
    if rng.random() < (0.8 if diabetic else 0.5):
        ckd = "ckd" in conditions
        egfr = rng.uniform(32, 58) if ckd else max(60.0, rng.gauss(88, 14))
        code = v.EGFR_CKD_EPI_2021 if rng.random() < 0.8 else v.EGFR_CKD_EPI
        facts.append(
            _observation(
                rng, code, "laboratory", when, encounter, value=round(egfr), unit=v.UNIT_EGFR
            )
        )
    if diabetic and rng.random() < 0.5:
        ratio = rng.lognormvariate(2.8, 1.0)
        code = v.UACR if rng.random() < 0.7 else v.MICROALBUMIN_RATIO
        facts.append(
            _observation(
                rng, code, "laboratory", when, encounter, value=round(ratio, 1), unit=v.UNIT_UACR
            )
        )
    if diabetic:
        value = rng.gauss(7.7, 1.45)
    elif "prediabetes" in conditions:
        value = rng.uniform(5.7, 6.4)
    else:
        value = rng.gauss(5.3, 0.25)
    value = round(max(4.2, min(value, 13.5)), 1)
    facts.append(
        _observation(rng, v.HBA1C, "laboratory", when, encounter, value=value, unit=v.UNIT_PERCENT)
    )
    return facts


@dataclass(frozen=True, slots=True)
class History:
    """Past surgery and the rare conditions that exclude a patient from measures."""

    facts: list[FactRec]
    no_breasts: bool = False
    no_cervix: bool = False


def _condition(
    rng: random.Random,
    codes: v.ConditionCodes,
    onset: datetime.date,
    *,
    status: str = "active",
    abated: datetime.date | None = None,
) -> FactRec:
    return FactRec(
        new_uuid(rng),
        "condition",
        codes.snomed,
        status,
        "problem-list-item",
        at_noon(onset),
        end=at_noon(abated) if abated else None,
        alt=codes.icd10,
    )


def _onset_between(
    rng: random.Random, as_of: datetime.date, birth: datetime.date, low: int, high: int
) -> datetime.date:
    """A day `low` to `high` days before as_of, never before birth."""
    return max(birth, _days_ago(rng, as_of, low, high))


def history_facts(
    rng: random.Random,
    *,
    age: int,
    sex: str,
    birth: datetime.date,
    conditions: dict[str, datetime.date],
    as_of: datetime.date,
) -> History:
    """Exclusions at realistic rates: hospice and palliative care (mostly seniors),
    frailty with advanced illness, a nursing home, bilateral mastectomy, hysterectomy,
    colon cancer, end-stage renal disease, pregnancy, bipolar disorder."""
    facts: list[FactRec] = []
    senior = age >= 65
    if rng.random() < (0.006 if senior else 0.001 if age >= 40 else 0.0):
        start = at_noon(_days_ago(rng, as_of, 5, 200))
        facts.append(
            FactRec(
                new_uuid(rng),
                "encounter",
                v.HOSPICE_ADMISSION,
                "finished",
                "HH",
                start,
                end=start + datetime.timedelta(hours=1),
            )
        )
    if rng.random() < (0.012 if senior else 0.003 if age >= 18 else 0.0):
        facts.append(_condition(rng, v.PALLIATIVE, _onset_between(rng, as_of, birth, 10, 300)))
    if age >= 66:
        if rng.random() < (0.18 if age >= 81 else 0.08):
            onset = _days_ago(rng, as_of, 20, 900)
            facts.append(_condition(rng, v.FAILURE_TO_THRIVE, onset))
        if rng.random() < 0.10:
            illness = v.DEMENTIA if rng.random() < 0.45 else v.HEART_FAILURE
            facts.append(_condition(rng, illness, _days_ago(rng, as_of, 20, 1400)))
        if rng.random() < 0.012:
            facts.append(
                _observation(
                    rng,
                    v.HOUSING_STATUS,
                    "survey",
                    at_noon(_days_ago(rng, as_of, 10, 300)),
                    None,
                    value_code=v.LIVES_IN_NURSING_HOME,
                    also_category="social-history",
                )
            )
    no_breasts = sex == "female" and age >= 35 and rng.random() < 0.012
    if no_breasts:
        onset = _onset_between(rng, as_of, birth, 400, 5000)
        facts.append(_condition(rng, v.BILATERAL_MASTECTOMY_HISTORY, onset))
    hysterectomy = 0.0 if age < 30 else 0.05 if age < 45 else 0.15 if age < 65 else 0.25
    no_cervix = sex == "female" and rng.random() < hysterectomy
    if no_cervix:
        day = _onset_between(rng, as_of, birth + datetime.timedelta(days=28 * 365), 60, 6000)
        facts.append(_procedure(rng, v.TOTAL_HYSTERECTOMY, at_noon(day), None))
        facts.append(_condition(rng, v.HYSTERECTOMY_HISTORY, day))
    if age >= 50 and rng.random() < 0.005:
        facts.append(_condition(rng, v.COLON_CANCER, _days_ago(rng, as_of, 100, 3000)))
    if "ckd" in conditions and rng.random() < 0.04:
        facts.append(_condition(rng, v.ESRD, _days_ago(rng, as_of, 30, 1500)))
    if sex == "female" and 18 <= age <= 44 and rng.random() < 0.04:
        onset = _days_ago(rng, as_of, 20, 250)
        facts.append(_condition(rng, v.PREGNANCY, onset))
    if age >= 15 and rng.random() < 0.012:
        onset = _onset_between(rng, as_of, birth + datetime.timedelta(days=15 * 365), 200, 4000)
        facts.append(_condition(rng, v.BIPOLAR, onset))
    return History(facts, no_breasts=no_breasts, no_cervix=no_cervix)


def screening_facts(
    rng: random.Random, *, age: int, sex: str, as_of: datetime.date, history: History
) -> list[FactRec]:
    """Breast, colorectal and cervical cancer screening, completed for ~60-75% of those due."""
    facts: list[FactRec] = []
    if sex == "female" and 40 <= age <= 74 and not history.no_breasts:
        if rng.random() < 0.72:
            day = _days_ago(rng, as_of, 10, 800)
        elif rng.random() < 0.4:
            day = _days_ago(rng, as_of, 830, 1800)  # done once, now overdue
        else:
            day = None
        if day is not None:
            # The billed procedure and the radiologist's result, which the measure reads.
            facts.append(_procedure(rng, v.MAMMOGRAPHY, at_noon(day), None))
            report = v.TOMOSYNTHESIS_REPORT if rng.random() < 0.3 else v.MAMMOGRAPHY_REPORT
            facts.append(_observation(rng, report, "imaging", at_noon(day), None))
    if 45 <= age <= 75:
        roll = rng.random()
        if roll < 0.45:
            # Never before 45, the age screening starts at.
            latest = min(3600, max(31, (age - 45) * 365))
            day = _days_ago(rng, as_of, 30, latest)
            facts.append(
                _procedure(rng, v.COLONOSCOPY, at_noon(day), None, alt=v.COLONOSCOPY_SNOMED)
            )
        elif roll < 0.63:
            facts.append(_lab(rng, v.FIT, _days_ago(rng, as_of, 10, 360), v.NEGATIVE))
        elif roll < 0.71:
            facts.append(_lab(rng, v.FIT_DNA, _days_ago(rng, as_of, 10, 1000), v.NEGATIVE))
        elif roll < 0.8:
            facts.append(_lab(rng, v.FIT, _days_ago(rng, as_of, 400, 1000), v.NEGATIVE))
    if sex == "female" and 21 <= age <= 64 and not history.no_cervix and rng.random() < 0.68:
        day = _days_ago(rng, as_of, 20, 1080)
        facts.append(_lab(rng, v.CERVICAL_CYTOLOGY, day, v.NILM))
        if age >= 30 and rng.random() < 0.6:
            result = v.POSITIVE if rng.random() < 0.07 else v.NEGATIVE
            facts.append(_lab(rng, v.HPV_TEST, day, result))
    return facts


def eye_exam_facts(
    rng: random.Random, *, conditions: dict[str, datetime.date], as_of: datetime.date
) -> list[FactRec]:
    """A diabetic's yearly retinal exam: the eye doctor's result as the clinic records
    it (CPT II 2022F/2023F), or a retinal photograph taken in the clinic (92250). About
    two in three diabetics have one in a year."""
    onset = conditions.get("diabetes")
    if onset is None:
        return []
    facts: list[FactRec] = []
    keen = rng.uniform(0.5, 0.92)
    anchor = rng.randrange(365)
    for years_back in range(3):
        day = as_of - datetime.timedelta(days=years_back * 365 + anchor)
        if day < onset or rng.random() >= keen:
            continue
        roll = rng.random()
        if roll < 0.25:
            code = v.FUNDUS_PHOTOGRAPHY
        elif roll < 0.85:
            code = v.RETINAL_EXAM_NO_RETINOPATHY
        else:
            code = v.RETINAL_EXAM_RETINOPATHY
        facts.append(_procedure(rng, code, at_noon(day), None))
    return facts


def _lab(rng: random.Random, code: v.Code, day: datetime.date, result: v.Code) -> FactRec:
    return _observation(rng, code, "laboratory", at_noon(day), None, value_code=result)


def _immunization(rng: random.Random, code: v.Code, day: datetime.date) -> FactRec:
    return FactRec(new_uuid(rng), "immunization", code, "completed", "", at_noon(day))


def _flu_day(rng: random.Random, season: int) -> datetime.date:
    """Most flu shots are given from late August to October, a tail until December."""
    return datetime.date(season, 8, 20) + datetime.timedelta(days=int(rng.triangular(0, 110, 30)))


def _childhood_series(
    rng: random.Random, *, birth: datetime.date, age_days: int
) -> tuple[list[FactRec], float]:
    """The CDC schedule up to school age. Families differ: a few decline vaccines, most
    keep to the schedule, others miss doses; returns the doses given and how likely the
    family is to bring the child for a flu shot each season."""
    roll = rng.random()
    if roll < 0.03:
        return [], 0.0
    on_time = roll < 0.66
    uptake, delay = (0.993, 21) if on_time else (0.85, 75)
    schedule: list[tuple[v.Code, int]] = list(v.CHILDHOOD_SCHEDULE)
    if rng.random() < 0.5:
        schedule += [(v.HIB_PRP_OMP, d) for d in v.HIB_PRP_OMP_DAYS]
    else:
        schedule += [(v.HIB_PRP_T, d) for d in v.HIB_PRP_T_DAYS]
    rota_days: tuple[int, ...] = v.ROTAVIRUS_SCHEDULE_DAYS
    rota = v.ROTAVIRUS_RV1 if rng.random() < 0.5 else v.ROTAVIRUS_RV5
    if rota is v.ROTAVIRUS_RV5:
        rota_days = (*rota_days, 180)
    schedule += [(rota, d) for d in rota_days]
    facts: list[FactRec] = []
    for code, due in schedule:
        given_on = due + rng.randint(0, delay)
        if given_on <= age_days and rng.random() < uptake:
            facts.append(_immunization(rng, code, birth + datetime.timedelta(days=given_on)))
    return facts, (0.75 if on_time else 0.35)


def immunization_facts(
    rng: random.Random, *, birth: datetime.date, age: int, as_of: datetime.date
) -> list[FactRec]:
    facts: list[FactRec] = []
    age_days = (as_of - birth).days
    flu_rate = 0.75 if age >= 65 else 0.55 if age >= 50 else 0.42
    if age < 19:
        facts, flu_rate = _childhood_series(rng, birth=birth, age_days=age_days)
    first_season = True
    for years_back in range(3, -1, -1):
        season = as_of.year - years_back
        shot = _flu_day(rng, season)
        if shot > as_of or (shot - birth).days < 183 or rng.random() >= flu_rate:
            continue
        young = (shot - birth).days < 3 * 365
        if age >= 65:
            vaccine = rng.choice(v.FLU_SENIOR_VACCINES)
        elif young:
            vaccine = v.FLU_PEDIATRIC
        else:
            vaccine = rng.choices(v.FLU_VACCINES, weights=(3, 5, 2))[0]
        facts.append(_immunization(rng, vaccine, shot))
        # A child under 9 vaccinated for the first time gets a second dose 4 weeks later.
        second = shot + datetime.timedelta(days=rng.randint(28, 45))
        if first_season and (shot - birth).days < 9 * 365 and second <= as_of:
            facts.append(_immunization(rng, vaccine, second))
        first_season = False
    if age >= 50 and rng.random() < 0.35:
        first = _days_ago(rng, as_of, 90, 1500)
        facts.append(_immunization(rng, v.ZOSTER_RECOMBINANT, first))
        facts.append(_immunization(rng, v.ZOSTER_RECOMBINANT, first + datetime.timedelta(days=70)))
    if age >= 19 and rng.random() < 0.6:
        facts.append(_immunization(rng, v.TDAP, _days_ago(rng, as_of, 30, 3600)))
    return facts
