"""The relationship side of a demo patient: channel preferences and opt-ins, outbound
and inbound referrals, and the marketing lead the patient may have started as.
"""

from __future__ import annotations

import datetime
import random
import uuid

from careloop.demo import vocabulary as v
from careloop.demo.clinical import at_noon
from careloop.demo.people import draw_person, new_uuid, pick
from careloop.demo.records import ContactRec, LeadRec, OptInRec, PreferenceRec, ReferralRec

# How often a patient says yes to each purpose on a channel they have.
OPT_IN_RATES = {
    "appointment": 0.96,
    "care_reminder": 0.9,
    "billing": 0.85,
    "marketing": 0.3,
    "survey": 0.5,
}
COUNTERPARTS = {
    "Cardiology": ("Lakeside Heart Institute", "Front Range Cardiology"),
    "Endocrinology": ("Metro Endocrine Associates", "Desert Diabetes & Endocrine"),
    "Nephrology": ("Harbor Kidney Care",),
    "Psychiatry": ("Northside Behavioral Health", "Mile High Psychiatry Group"),
    "Pulmonology": ("Clearwater Lung Specialists",),
    "Gastroenterology": ("Valley Digestive Health",),
    "Orthopaedic Surgery": ("Summit Orthopedics",),
    "Dermatology": ("Skyline Dermatology",),
}
REFERRAL_STATUSES = (
    ("sent", 20),
    ("scheduled", 15),
    ("completed", 20),
    ("closed", 35),
    ("cancelled", 10),
)
LEAD_SOURCES = (
    ("web_form", 30),
    ("phone_call", 20),
    ("physician_referral", 15),
    ("community_event", 10),
    ("paid_search", 15),
    ("word_of_mouth", 10),
)
CAMPAIGNS = (
    "",
    "spring-wellness",
    "flu-shot-drive",
    "new-clinic-denver",
    "medicare-open-enrollment",
)
INTERESTS = (
    "primary care",
    "annual physical",
    "pediatrics",
    "diabetes care",
    "telehealth",
    "Medicare wellness visit",
)


def draw_preference(rng: random.Random, *, contacts: tuple[ContactRec, ...]) -> PreferenceRec:
    channels: list[str] = []
    if any(c.can_sms for c in contacts):
        channels.append("sms")
    if any(c.system == "email" for c in contacts):
        channels.append("email")
    rng.shuffle(channels)
    if rng.random() < 0.6:
        channels.append("portal")
    if any(c.can_voice for c in contacts):
        channels.append("voice")
    opt_ins: list[OptInRec] = []
    for channel in channels:
        # Voice and portal carry care logistics only, in this practice's set-up.
        purposes = (
            tuple(OPT_IN_RATES)[:2] if channel in ("voice", "portal") else tuple(OPT_IN_RATES)
        )
        opt_ins += [OptInRec(channel, p, rng.random() < OPT_IN_RATES[p]) for p in purposes]
    quiet = rng.random() < 0.85
    return PreferenceRec(
        channel_order=tuple(channels),
        quiet_start=datetime.time(21, 0) if quiet else None,
        quiet_end=datetime.time(8, 0) if quiet else None,
        do_not_contact=rng.random() < 0.01,
        opt_ins=tuple(opt_ins),
    )


def draw_referrals(
    rng: random.Random,
    *,
    conditions: dict[str, datetime.date],
    as_of: datetime.date,
    requester_id: uuid.UUID,
) -> tuple[ReferralRec, ...]:
    referrals: list[ReferralRec] = []
    if rng.random() < 0.05:
        linked = [k for k in conditions if k in v.REFERRAL_SPECIALTY_FOR]
        if linked:
            key = rng.choice(linked)
            specialty = v.REFERRAL_SPECIALTY_FOR[key]
            reason: v.Code | None = next(c.snomed for c in v.CONDITIONS if c.key == key)
        else:
            specialty = rng.choice(("Orthopaedic Surgery", "Dermatology", "Gastroenterology"))
            reason = None
        referrals.append(_referral(rng, "outbound", specialty, reason, as_of, requester_id))
    if rng.random() < 0.01:
        specialty = rng.choice(tuple(COUNTERPARTS))
        referrals.append(_referral(rng, "inbound", specialty, None, as_of, requester_id))
    return tuple(referrals)


def _referral(
    rng: random.Random,
    direction: str,
    specialty: str,
    reason: v.Code | None,
    as_of: datetime.date,
    requester_id: uuid.UUID,
) -> ReferralRec:
    created = at_noon(as_of - datetime.timedelta(days=rng.randint(1, 700)))
    status = pick(rng, REFERRAL_STATUSES)
    age_days = (at_noon(as_of) - created).days
    if status in ("sent", "scheduled") and age_days > 120:
        # Old referrals that never came back are what closing the loop is about; keep some.
        status = "closed" if rng.random() < 0.6 else status
    closed = None
    if status in ("closed", "cancelled"):
        closed = min(at_noon(as_of), created + datetime.timedelta(days=rng.randint(7, 90)))
    return ReferralRec(
        id=new_uuid(rng),
        direction=direction,
        status=status,
        specialty=specialty,
        counterpart=rng.choice(COUNTERPARTS[specialty]),
        reason=reason,
        created_at=created,
        closed_at=closed,
        requester_id=requester_id,
    )


def _lead(
    rng: random.Random,
    *,
    given: str,
    family: str,
    phone: str | None,
    email: str | None,
    created: datetime.datetime,
    status: str,
) -> LeadRec:
    return LeadRec(
        id=new_uuid(rng),
        given=given,
        family=family,
        phone=phone,
        email=email,
        source=pick(rng, LEAD_SOURCES),
        campaign=rng.choice(CAMPAIGNS),
        interest=rng.choice(INTERESTS),
        status=status,
        created_at=created,
        converted=status == "converted",
    )


def draw_leads(
    rng: random.Random,
    *,
    given: str,
    family: str,
    contacts: tuple[ContactRec, ...],
    registered: datetime.datetime,
    as_of: datetime.date,
    index: int,
) -> tuple[LeadRec, ...]:
    """A converted lead for ~4% of recent patients, plus ~2% prospects who never came."""
    leads: list[LeadRec] = []
    recent = (at_noon(as_of) - registered).days < 3 * 365
    if recent and rng.random() < 0.12:
        phone = next((c.value for c in contacts if c.system == "phone"), None)
        email = next((c.value for c in contacts if c.system == "email"), None)
        created = registered - datetime.timedelta(days=rng.randint(2, 40))
        leads.append(
            _lead(
                rng,
                given=given,
                family=family,
                phone=phone,
                email=email,
                created=created,
                status="converted",
            )
        )
    if rng.random() < 0.02:
        prospect = draw_person(rng, as_of=as_of)
        phone = f"(312) 555-01{rng.randint(0, 99):02d}"
        email = f"prospect{index}@example.org" if rng.random() < 0.7 else None
        created = at_noon(as_of - datetime.timedelta(days=rng.randint(0, 540)))
        status = rng.choice(("new", "contacted", "qualified", "lost", "lost"))
        leads.append(
            _lead(
                rng,
                given=prospect.given,
                family=prospect.family,
                phone=phone,
                email=email,
                created=created,
                status=status,
            )
        )
    return tuple(leads)
