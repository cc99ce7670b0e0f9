"""The clinical picture of a demo patient: chronic conditions at realistic prevalence,
the observations recorded at visits, cancer screenings, immunizations and medications.

Prevalences follow the CDC's published US adult figures by age band (hypertension
~30% of adults, rising to about half over 60; diabetes ~11%; obesity ~40%; CKD stage 3
~6%); screening completion sits at 60-75% so that care gaps exist to be found.
"""

from __future__ import annotations

import datetime
import random

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


def vitals_at_visit(
    rng: random.Random,
    *,
    when: datetime.datetime,
    age: int,
    conditions: dict[str, datetime.date],
    encounter: FactRec,
) -> list[FactRec]:
    """Blood pressure at every adult in-person visit, recorded as one panel."""
    if age < 18:
        return []
    hypertensive = "hypertension" in conditions
    systolic = round(rng.gauss(112 + 0.4 * (age - 18) + (16 if hypertensive else 0), 11))
    diastolic = round(rng.gauss(72 + (8 if hypertensive else 0), 8))
    systolic = max(88, min(210, systolic))
    diastolic = max(50, min(125, min(diastolic, systolic - 20)))
    components = (
        Component(v.BP_SYSTOLIC, float(systolic), v.UNIT_MMHG),
        Component(v.BP_DIASTOLIC, float(diastolic), v.UNIT_MMHG),
    )
    return [_observation(rng, v.BP_PANEL, "vital-signs", when, encounter, components=components)]


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
    )


def preventive_observations(
    rng: random.Random,
    *,
    when: datetime.datetime,
    age: int,
    conditions: dict[str, datetime.date],
    smoking: v.Code,
    encounter: FactRec,
) -> list[FactRec]:
    """What a preventive visit records: BMI, PHQ-9 depression screen, smoking status."""
    facts: list[FactRec] = []
    if age >= 18:
        bmi = rng.uniform(30.0, 44.0) if "obesity" in conditions else rng.gauss(25.5, 2.6)
        bmi = round(max(17.0, min(bmi, 29.9 if "obesity" not in conditions else bmi)), 1)
        facts.append(
            _observation(rng, v.BMI, "vital-signs", when, encounter, value=bmi, unit=v.UNIT_BMI)
        )
    if age >= 12 and rng.random() < 0.85:
        if "depression" in conditions:
            score = rng.randint(5, 22)
        else:
            score = min(27, int(rng.expovariate(0.45)))
        facts.append(
            _observation(
                rng, v.PHQ9, "survey", when, encounter, value=float(score), unit=v.UNIT_SCORE
            )
        )
    if age >= 13:
        facts.append(
            _observation(rng, v.TOBACCO, "social-history", when, encounter, value_code=smoking)
        )
    return facts


def draw_smoking(rng: random.Random, *, age: int) -> v.Code:
    roll = rng.random()
    if age >= 18 and roll < 0.12:
        return v.CURRENT_SMOKER
    if age >= 25 and roll < 0.32:
        return v.EX_SMOKER
    return v.NEVER_SMOKER


def a1c_result(
    rng: random.Random,
    *,
    when: datetime.datetime,
    conditions: dict[str, datetime.date],
    encounter: FactRec | None,
) -> FactRec:
    if "diabetes" in conditions:
        value = rng.gauss(7.6, 1.3)
    elif "prediabetes" in conditions:
        value = rng.uniform(5.7, 6.4)
    else:
        value = rng.gauss(5.3, 0.25)
    value = round(max(4.2, min(value, 13.5)), 1)
    return _observation(
        rng, v.HBA1C, "laboratory", when, encounter, value=value, unit=v.UNIT_PERCENT
    )


def screening_facts(
    rng: random.Random, *, age: int, sex: str, as_of: datetime.date
) -> list[FactRec]:
    """Breast, colorectal and cervical cancer screening, completed for ~60-75% of those due."""
    facts: list[FactRec] = []
    if sex == "female" and 40 <= age <= 74:
        if rng.random() < 0.70:
            day = _days_ago(rng, as_of, 10, 800)
        elif rng.random() < 0.4:
            day = _days_ago(rng, as_of, 830, 1800)  # done once, now overdue
        else:
            day = None
        if day is not None:
            facts.append(
                FactRec(
                    new_uuid(rng),
                    "procedure",
                    v.MAMMOGRAPHY,
                    "completed",
                    "screening",
                    at_noon(day),
                    alt=v.MAMMOGRAPHY_REPORT,
                )
            )
    if 45 <= age <= 75:
        roll = rng.random()
        if roll < 0.45:
            facts.append(
                FactRec(
                    new_uuid(rng),
                    "procedure",
                    v.COLONOSCOPY,
                    "completed",
                    "screening",
                    at_noon(_days_ago(rng, as_of, 30, 3600)),
                )
            )
        elif roll < 0.63:
            facts.append(_lab(rng, v.FIT, _days_ago(rng, as_of, 10, 360), v.NEGATIVE))
        elif roll < 0.75:
            facts.append(_lab(rng, v.FIT, _days_ago(rng, as_of, 400, 1000), v.NEGATIVE))
    if sex == "female" and 21 <= age <= 64 and rng.random() < 0.68:
        day = _days_ago(rng, as_of, 20, 1080)
        facts.append(_lab(rng, v.CERVICAL_CYTOLOGY, day, v.NILM))
        if age >= 30 and rng.random() < 0.6:
            result = v.POSITIVE if rng.random() < 0.07 else v.NEGATIVE
            facts.append(_lab(rng, v.HPV_TEST, day, result))
    return facts


def _lab(rng: random.Random, code: v.Code, day: datetime.date, result: v.Code) -> FactRec:
    return _observation(rng, code, "laboratory", at_noon(day), None, value_code=result)


def _immunization(rng: random.Random, code: v.Code, day: datetime.date) -> FactRec:
    return FactRec(new_uuid(rng), "immunization", code, "completed", "", at_noon(day))


def immunization_facts(
    rng: random.Random, *, birth: datetime.date, age: int, as_of: datetime.date
) -> list[FactRec]:
    facts: list[FactRec] = []
    age_days = (as_of - birth).days
    if age < 19:
        # A few families decline vaccines altogether; the rest miss the odd dose.
        uptake = 0.0 if rng.random() < 0.03 else 0.94
        schedule: list[tuple[v.Code, int]] = list(v.CHILDHOOD_SCHEDULE)
        hib = v.HIB_PRP_OMP if rng.random() < 0.5 else v.HIB_PRP_T
        schedule += [(hib, d) for d in v.HIB_SCHEDULE_DAYS]
        rota_days: tuple[int, ...] = v.ROTAVIRUS_SCHEDULE_DAYS
        rota = v.ROTAVIRUS_RV1 if rng.random() < 0.5 else v.ROTAVIRUS_RV5
        if rota is v.ROTAVIRUS_RV5:
            rota_days = (*rota_days, 180)
        schedule += [(rota, d) for d in rota_days]
        for code, due in schedule:
            given_on = due + rng.randint(0, 30)
            if given_on <= age_days and rng.random() < uptake:
                facts.append(_immunization(rng, code, birth + datetime.timedelta(days=given_on)))
    flu_rate = 0.72 if age >= 65 else 0.55 if age < 18 else 0.45
    for years_back in range(3):
        season = datetime.date(as_of.year - years_back, 9, 1)
        if season > as_of:
            continue
        shot = season + datetime.timedelta(days=rng.randint(0, 100))
        if shot <= as_of and (shot - birth).days >= 183 and rng.random() < flu_rate:
            vaccine = rng.choices(v.FLU_VACCINES, weights=(3, 5, 2))[0]
            facts.append(_immunization(rng, vaccine, shot))
    if age >= 50 and rng.random() < 0.35:
        first = _days_ago(rng, as_of, 90, 1500)
        facts.append(_immunization(rng, v.ZOSTER_RECOMBINANT, first))
        facts.append(_immunization(rng, v.ZOSTER_RECOMBINANT, first + datetime.timedelta(days=70)))
    if age >= 19 and rng.random() < 0.6:
        facts.append(_immunization(rng, v.TDAP, _days_ago(rng, as_of, 30, 3600)))
    return facts
