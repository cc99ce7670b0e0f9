"""Three years of a patient's appointments, the encounters of the visits that happened,
the observations those visits recorded, and the visits already booked ahead.

No-show rates follow what US primary care reports (10-25%): higher for Medicaid and
self-pay patients and young adults, lower for seniors.
"""

from __future__ import annotations

import datetime
import math
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from careloop.demo import clinical
from careloop.demo import vocabulary as v
from careloop.demo.people import age_on, new_uuid
from careloop.demo.practice import APPOINTMENT_TYPE_BY_CODE
from careloop.demo.records import AppointmentRec, FactRec, ProviderRec

HISTORY_DAYS = 3 * 365
CANCEL_RATE = 0.07
_ZONES: dict[str, ZoneInfo] = {}


@dataclass(frozen=True, slots=True)
class VisitContext:
    """What the visit generator needs to know about the patient."""

    birth: datetime.date
    sex: str
    payer: str
    registered: datetime.date
    conditions: dict[str, datetime.date]
    profile: clinical.Profile
    provider: ProviderRec
    clinic_time_zone: str


@dataclass(slots=True)
class VisitHistory:
    appointments: list[AppointmentRec]
    facts: list[FactRec]
    no_shows_last_year: int
    last_fulfilled: datetime.date | None


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; means here stay small (under ~30)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def no_show_rate(*, age: int, payer: str) -> float:
    rate = 0.11
    rate += {"medicaid": 0.09, "self_pay": 0.06}.get(payer, 0.0)
    if 18 <= age < 35:
        rate += 0.05
    elif age >= 65:
        rate -= 0.01
    return rate


def _yearly_visits(*, age: int, chronic: int) -> float:
    base = 5.0 if age < 2 else 1.4 if age < 18 else 1.7 if age < 45 else 2.4 if age < 65 else 3.3
    return base + 0.7 * chronic


def _preventive_rate(*, age: int, payer: str) -> float:
    """How likely the patient keeps a yearly preventive visit (a well-child check, an
    annual physical, Medicare's annual wellness visit)."""
    if age < 18:
        return 0.65
    if age >= 65:
        return 0.86 if payer == "medicare" else 0.6
    return 0.42 if age < 40 else 0.55


def _preventive_days(
    rng: random.Random, *, ctx: VisitContext, window_start: datetime.date, span: int
) -> list[int]:
    """One preventive visit a year, about the same time each year, for patients who
    keep them (infants' well-child checks come with their frequent visits instead)."""
    if age_on(ctx.birth, window_start + datetime.timedelta(days=span)) < 2:
        return []
    rate = _preventive_rate(
        age=age_on(ctx.birth, window_start + datetime.timedelta(days=span)), payer=ctx.payer
    )
    anchor = rng.randrange(365)
    days = []
    for year in range(span // 365 + 2):
        offset = anchor + 365 * year + rng.randint(-25, 25)
        if 0 <= offset < span and rng.random() < rate:
            days.append(offset)
    return days


def _slot(
    rng: random.Random, day: datetime.date, minutes: int, zone: str
) -> tuple[datetime.datetime, datetime.datetime]:
    """A start on the clinic's 20-minute grid between 08:00 and 16:40, local time."""
    while day.weekday() >= 5:
        day += datetime.timedelta(days=1)
    slot = rng.randrange(0, 27)
    local = datetime.datetime(
        day.year, day.month, day.day, 8 + slot // 3, (slot % 3) * 20, tzinfo=_zone(zone)
    )
    start = local.astimezone(datetime.UTC)
    return start, start + datetime.timedelta(minutes=minutes)


def _visit_type(
    rng: random.Random,
    *,
    age: int,
    ctx: VisitContext,
    first: bool,
    preventive: bool,
    awv_done: bool,
) -> str:
    if first and not preventive:
        return "new-patient-complex" if ctx.conditions and rng.random() < 0.4 else "new-patient"
    if preventive or (age < 2 and rng.random() < 0.4):
        if age < 18:
            return "well-child"
        if ctx.payer == "medicare" and age >= 65:
            return "awv-subsequent" if awv_done else "awv-initial"
        return "annual-physical"
    roll = rng.random()
    if roll < 0.2:
        return "telehealth-extended" if ctx.conditions and rng.random() < 0.3 else "telehealth"
    if roll < 0.27:
        return "nurse-visit"
    if ctx.conditions:
        return rng.choices(("follow-up", "follow-up-extended", "complex-visit"), weights=(5, 4, 1))[
            0
        ]
    return "follow-up"


def _billed_code(rng: random.Random, *, type_code: str, age: int) -> str:
    """The code the visit is billed under: age-specific for preventive visits, and an
    E/M level spread around the type's default for problem visits."""
    if type_code in ("annual-physical", "well-child"):
        for upper, _new, established in v.PREVENTIVE_BY_AGE:
            if age < upper:
                return established
    if type_code in ("new-patient", "new-patient-complex") and rng.random() < 0.35:
        for upper, new, _established in v.PREVENTIVE_BY_AGE:
            if age < upper:
                return new
    if type_code in ("follow-up", "telehealth"):
        return rng.choices(("99212", "99213", "99214"), weights=(15, 60, 25))[0]
    if type_code == "new-patient":
        return rng.choices(("99202", "99203", "99204"), weights=(20, 60, 20))[0]
    return APPOINTMENT_TYPE_BY_CODE[type_code].visit_code


def visit_history(rng: random.Random, *, ctx: VisitContext, as_of: datetime.date) -> VisitHistory:
    history = VisitHistory([], [], 0, None)
    window_start = max(as_of - datetime.timedelta(days=HISTORY_DAYS), ctx.registered)
    span = (as_of - window_start).days
    age_now = age_on(ctx.birth, as_of)
    chronic = len(ctx.conditions.keys() - {"obesity", "prediabetes"})
    preventive_days = _preventive_days(rng, ctx=ctx, window_start=window_start, span=span)
    yearly = _yearly_visits(age=age_now, chronic=chronic) - len(preventive_days) * 365 / max(
        span, 365
    )
    mean = max(yearly, 0.3) * span / 365 * rng.uniform(0.4, 1.6)
    days = [(rng.randrange(0, span), False) for _ in range(poisson(rng, mean))] if span > 0 else []
    days = sorted(days + [(d, True) for d in preventive_days])
    new_patient = ctx.registered >= window_start
    awv_done = False
    last_a1c: datetime.date | None = None
    rate = no_show_rate(age=age_now, payer=ctx.payer) * rng.uniform(0.6, 1.4)
    for i, (offset, preventive) in enumerate(days):
        day = window_start + datetime.timedelta(days=offset)
        age = age_on(ctx.birth, day)
        type_code = _visit_type(
            rng,
            age=age,
            ctx=ctx,
            first=new_patient and i == 0,
            preventive=preventive,
            awv_done=awv_done,
        )
        appt_type = APPOINTMENT_TYPE_BY_CODE[type_code]
        start, end = _slot(rng, day, appt_type.minutes, ctx.clinic_time_zone)
        roll = rng.random()
        status = (
            "noshow" if roll < rate else "cancelled" if roll < rate + CANCEL_RATE else "fulfilled"
        )
        booked = start - datetime.timedelta(days=rng.randint(1, 45), hours=rng.randint(0, 8))
        appt = AppointmentRec(
            new_uuid(rng),
            ctx.provider.id,
            ctx.provider.location_id,
            type_code,
            start,
            end,
            status,
            booked,
        )
        history.appointments.append(appt)
        if status == "noshow" and (as_of - day).days <= 365:
            history.no_shows_last_year += 1
        if status != "fulfilled":
            continue
        awv_done = awv_done or type_code.startswith("awv")
        history.last_fulfilled = day
        history.facts += _visit_facts(rng, ctx=ctx, appt=appt, age=age, a1c_last=last_a1c)
        if history.facts[-1].code is v.HBA1C:
            last_a1c = day
    history.appointments += _booked_ahead(rng, ctx=ctx, as_of=as_of, age=age_now)
    return history


def _visit_facts(
    rng: random.Random,
    *,
    ctx: VisitContext,
    appt: AppointmentRec,
    age: int,
    a1c_last: datetime.date | None,
) -> list[FactRec]:
    """The encounter of a visit that happened, and what was measured at it."""
    appt_type = APPOINTMENT_TYPE_BY_CODE[appt.type_code]
    code = v.visit_code(_billed_code(rng, type_code=appt.type_code, age=age))
    encounter = FactRec(
        new_uuid(rng),
        "encounter",
        code,
        "finished",
        "VR" if appt_type.telehealth else "AMB",
        appt.start,
        end=appt.end,
        appointment_id=appt.id,
        provider_id=appt.provider_id,
        location_id=appt.location_id,
    )
    facts = [encounter]
    preventive = appt.type_code in (
        "annual-physical",
        "well-child",
        "awv-initial",
        "awv-subsequent",
    )
    in_person = not appt_type.telehealth
    if in_person:
        facts += clinical.vitals_at_visit(
            rng,
            when=appt.start,
            age=age,
            conditions=ctx.conditions,
            profile=ctx.profile,
            encounter=encounter,
            bmi=preventive or rng.random() < 0.9,
        )
    if appt.type_code != "nurse-visit":
        facts += clinical.screenings_at_visit(
            rng,
            when=appt.start,
            age=age,
            conditions=ctx.conditions,
            profile=ctx.profile,
            encounter=encounter,
            preventive=preventive,
            in_person=in_person,
        )
    day = appt.start.date()
    if _a1c_due(ctx, age=age, day=day, last=a1c_last, preventive=appt.type_code != "follow-up"):
        # Last in the list on purpose: the caller reads it to date the next A1c.
        facts += clinical.lab_draw(
            rng, when=appt.end, conditions=ctx.conditions, encounter=encounter
        )
    return facts


def _a1c_due(
    ctx: VisitContext, *, age: int, day: datetime.date, last: datetime.date | None, preventive: bool
) -> bool:
    if "diabetes" in ctx.conditions and ctx.conditions["diabetes"] <= day:
        interval = 150  # about twice a year, as ADA standards ask of a controlled patient
    elif "prediabetes" in ctx.conditions or (age >= 45 and preventive):
        interval = 365
    else:
        return False
    return last is None or (day - last).days >= interval


def _booked_ahead(
    rng: random.Random, *, ctx: VisitContext, as_of: datetime.date, age: int
) -> list[AppointmentRec]:
    if rng.random() >= (0.55 if ctx.conditions else 0.35):
        return []
    day = as_of + datetime.timedelta(days=rng.randint(1, 120))
    if age < 18:
        type_code = rng.choice(("well-child", "follow-up", "telehealth"))
    else:
        type_code = rng.choice(("annual-physical", "follow-up", "follow-up", "telehealth"))
    appt_type = APPOINTMENT_TYPE_BY_CODE[type_code]
    start, end = _slot(rng, day, appt_type.minutes, ctx.clinic_time_zone)
    status = "confirmed" if (day - as_of).days <= 7 and rng.random() < 0.6 else "booked"
    booked = clinical.at_noon(as_of - datetime.timedelta(days=rng.randint(0, 60)))
    return [
        AppointmentRec(
            new_uuid(rng),
            ctx.provider.id,
            ctx.provider.location_id,
            type_code,
            start,
            end,
            status,
            booked,
        )
    ]
