"""Who the demo patients are: age, sex, names, language, address, contact points and
insurance, drawn to look like a US primary-care panel.

Every draw takes the patient's own `random.Random`, so a patient depends only on the
seed and its index. Phone numbers are in the 555-0100..0199 block the North American
numbering plan reserves for fiction; e-mail addresses are on example.com/.org
(RFC 2606), so nothing generated can reach a real person.
"""

from __future__ import annotations

import datetime
import random
import unicodedata
import uuid
from dataclasses import dataclass

from careloop.demo.names import (
    FAMILY,
    FAMILY_ES,
    GIVEN_FEMALE,
    GIVEN_FEMALE_ES,
    GIVEN_MALE,
    GIVEN_MALE_ES,
    NICKNAMES,
    STREETS,
)
from careloop.demo.records import ContactRec, CoverageRec

# Age bands of a primary-care panel (children included): (low, high inclusive, weight).
AGE_BANDS = (
    (0, 4, 6),
    (5, 17, 14),
    (18, 34, 17),
    (35, 49, 17),
    (50, 64, 24),
    (65, 79, 16),
    (80, 94, 6),
)


@dataclass(frozen=True, slots=True)
class StateInfo:
    code: str
    time_zone: str
    area_codes: tuple[str, ...]
    cities: tuple[tuple[str, str], ...]  # (city, ZIP)
    location: int  # index of the clinic location patients of this state attend
    weight: int


# Most patients live near one of the four clinics; a tail lives elsewhere (moved,
# snowbirds, telehealth), which is what makes per-patient time zones matter.
STATES = (
    StateInfo(
        "IL",
        "America/Chicago",
        ("312", "773", "847"),
        (("Chicago", "60614"), ("Evanston", "60201"), ("Oak Park", "60302")),
        0,
        300,
    ),
    StateInfo(
        "CO",
        "America/Denver",
        ("303", "720"),
        (("Denver", "80205"), ("Aurora", "80012"), ("Lakewood", "80226")),
        1,
        200,
    ),
    StateInfo(
        "AZ",
        "America/Phoenix",
        ("602", "480"),
        (("Phoenix", "85004"), ("Tempe", "85281"), ("Mesa", "85201")),
        2,
        180,
    ),
    StateInfo(
        "NY",
        "America/New_York",
        ("718", "347"),
        (("Brooklyn", "11215"), ("Queens", "11375"), ("Staten Island", "10301")),
        3,
        200,
    ),
    StateInfo(
        "WI", "America/Chicago", ("414",), (("Milwaukee", "53202"), ("Kenosha", "53140")), 0, 25
    ),
    StateInfo(
        "IN",
        "America/Indiana/Indianapolis",
        ("219",),
        (("Gary", "46402"), ("Hammond", "46320")),
        0,
        20,
    ),
    StateInfo(
        "NJ", "America/New_York", ("201",), (("Jersey City", "07302"), ("Hoboken", "07030")), 3, 25
    ),
    StateInfo("NM", "America/Denver", ("505",), (("Albuquerque", "87102"),), 1, 10),
    StateInfo(
        "CA",
        "America/Los_Angeles",
        ("619", "415"),
        (("San Diego", "92101"), ("San Francisco", "94110")),
        2,
        15,
    ),
    StateInfo(
        "FL", "America/New_York", ("305", "813"), (("Miami", "33130"), ("Tampa", "33602")), 3, 15
    ),
    StateInfo(
        "TX", "America/Chicago", ("512", "713"), (("Austin", "78701"), ("Houston", "77002")), 0, 10
    ),
    StateInfo("HI", "Pacific/Honolulu", ("808",), (("Honolulu", "96813"),), 2, 2),
    StateInfo("AK", "America/Anchorage", ("907",), (("Anchorage", "99501"),), 1, 2),
)
STATE_WEIGHTS = tuple(s.weight for s in STATES)
STATE_BY_CODE = {s.code: s for s in STATES}

# Languages other than English and Spanish spoken by a few percent of a US panel.
OTHER_LANGUAGES = (("zh", 3), ("vi", 2), ("ko", 1), ("ar", 1), ("ru", 1), ("tl", 1), ("pl", 1))

COMMERCIAL_PAYERS = ("Aetna", "Blue Cross Blue Shield", "Cigna", "UnitedHealthcare", "Humana")
COMMERCIAL_PLANS = ("PPO", "HMO", "EPO", "High Deductible PPO", "POS")
MEDICAID_NAMES = {
    "IL": "Illinois Medicaid (HFS)",
    "CO": "Health First Colorado",
    "AZ": "AHCCCS",
    "NY": "New York State Medicaid",
    "CA": "Medi-Cal",
}


@dataclass(frozen=True, slots=True)
class Person:
    given: str
    family: str
    preferred_name: str | None
    sex: str
    birth_date: datetime.date
    language: str
    state: StateInfo
    address_line: str
    city: str
    postal_code: str


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    """One value from (value, weight) pairs."""
    return rng.choices([value for value, _ in weighted], weights=[w for _, w in weighted])[0]


def new_uuid(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID from the patient's own stream, so ids repeat for a seed."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def age_on(birth: datetime.date, day: datetime.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def draw_birth_date(rng: random.Random, *, as_of: datetime.date) -> datetime.date:
    low, high, _ = rng.choices(AGE_BANDS, weights=[b[2] for b in AGE_BANDS])[0]
    days = rng.randint(low * 365 + 1, high * 365 + 364)
    return as_of - datetime.timedelta(days=days)


def draw_language(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return "es"
    if roll < 0.25:
        return pick(rng, OTHER_LANGUAGES)
    return "en"


def draw_name(rng: random.Random, *, sex: str, hispanic: bool) -> tuple[str, str]:
    given_pool: tuple[str, ...]
    if hispanic:
        given_pool = GIVEN_FEMALE_ES if sex == "female" else GIVEN_MALE_ES
        family = rng.choice(FAMILY_ES)
    else:
        given_pool = GIVEN_FEMALE if sex == "female" else GIVEN_MALE
        family = rng.choice(FAMILY)
    return rng.choice(given_pool), family


def draw_person(rng: random.Random, *, as_of: datetime.date) -> Person:
    birth = draw_birth_date(rng, as_of=as_of)
    sex = "female" if rng.random() < 0.52 else "male"
    if rng.random() < 0.003:
        sex = "other"
    language = draw_language(rng)
    hispanic = language == "es" or rng.random() < 0.08
    given, family = draw_name(rng, sex="male" if sex == "male" else "female", hispanic=hispanic)
    preferred = NICKNAMES.get(given) if rng.random() < 0.4 else None
    state = rng.choices(STATES, weights=STATE_WEIGHTS)[0]
    city, postal = rng.choice(state.cities)
    line = f"{rng.randint(10, 9899)} {rng.choice(STREETS)}"
    if rng.random() < 0.25:
        line += f" Apt {rng.randint(1, 40)}{rng.choice('ABCD')}"
    return Person(given, family, preferred, sex, birth, language, state, line, city, postal)


def _phone(rng: random.Random, state: StateInfo) -> str:
    return f"({rng.choice(state.area_codes)}) 555-01{rng.randint(0, 99):02d}"


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(ch for ch in decomposed if ch.isascii() and (ch.isalnum() or ch == "-"))
    return kept.lower()


def draw_contacts(
    rng: random.Random, *, person: Person, index: int, age: int
) -> tuple[ContactRec, ...]:
    contacts: list[ContactRec] = []
    # Children are reached through a parent's phone; the record still holds a number.
    if rng.random() < 0.9:
        contacts.append(
            ContactRec(
                new_uuid(rng),
                "phone",
                "mobile",
                _phone(rng, person.state),
                1,
                rng.random() < 0.7,
                True,
                True,
                False,
            )
        )
    if rng.random() < (0.45 if age >= 65 else 0.2) or not contacts:
        contacts.append(
            ContactRec(
                new_uuid(rng),
                "phone",
                "home",
                _phone(rng, person.state),
                len(contacts) + 1,
                False,
                False,
                True,
                False,
            )
        )
    if rng.random() < (0.55 if age >= 75 else 0.8):
        domain = "example.com" if rng.random() < 0.7 else "example.org"
        # The index keeps addresses unique, as real ones are, without a lookup.
        local = f"{_ascii(person.given)}.{_ascii(person.family)}{index}"
        contacts.append(
            ContactRec(
                new_uuid(rng),
                "email",
                "home",
                f"{local}@{domain}",
                1,
                rng.random() < 0.6,
                False,
                False,
                True,
            )
        )
    return tuple(contacts)


MEDICARE_ADVANTAGE = ("Humana", "Aetna", "UnitedHealthcare")


def payer_names() -> tuple[str, ...]:
    """Every payer a demo coverage can name (self-pay aside), for the payer directory."""
    medicaid = sorted({MEDICAID_NAMES.get(s.code, f"{s.code} Medicaid") for s in STATES})
    advantage = [f"{name} Medicare Advantage" for name in MEDICARE_ADVANTAGE]
    return (*COMMERCIAL_PAYERS, "Medicare", *advantage, *medicaid)


def payer_id(name: str) -> uuid.UUID:
    """A payer's id: fixed by its name, so every seed and format agrees on it."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:careloop:demo:payer:{name}")


def draw_payer_category(rng: random.Random, *, age: int) -> str:
    """Medicare for most 65+, Medicaid weighted to children and young adults."""
    mix: tuple[tuple[str, int], ...]
    if age >= 65:
        mix = (("medicare", 86), ("commercial", 9), ("medicaid", 3), ("self_pay", 2))
    elif age < 18:
        mix = (("commercial", 53), ("medicaid", 42), ("self_pay", 5))
    elif age < 35:
        mix = (("commercial", 55), ("medicaid", 24), ("self_pay", 19), ("medicare", 2))
    else:
        mix = (("commercial", 67), ("medicaid", 14), ("self_pay", 11), ("medicare", 8))
    return pick(rng, mix)


def _member_id(rng: random.Random, category: str) -> str:
    if category == "medicare":
        # The shape of a Medicare Beneficiary Identifier (letters avoid S, L, O, I, B, Z).
        letters = "ACDEFGHJKMNPQRTUVWXY"
        return (
            f"{rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}{rng.randint(0, 9)}"
            f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(0, 9)}"
            f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(10, 99)}"
        )
    prefix = {"medicaid": "MC", "commercial": rng.choice(("XEH", "W", "U", "ZGP"))}[category]
    return f"{prefix}{rng.randint(10_000_000, 99_999_999)}"


def draw_coverage(
    rng: random.Random, *, person: Person, age: int, as_of: datetime.date
) -> tuple[CoverageRec, ...]:
    category = draw_payer_category(rng, age=age)
    start = as_of - datetime.timedelta(days=rng.randint(30, 3650))
    start = max(start, person.birth_date)
    if category == "self_pay":
        return (
            CoverageRec(new_uuid(rng), "self_pay", "Self-pay", "", None, start, None, "active", 1),
        )
    if category == "medicare":
        advantage = rng.random() < 0.45
        payer = f"{rng.choice(MEDICARE_ADVANTAGE)} Medicare Advantage" if advantage else "Medicare"
        plan = "Medicare Advantage HMO" if advantage else "Medicare Part B"
    elif category == "medicaid":
        payer = MEDICAID_NAMES.get(person.state.code, f"{person.state.code} Medicaid")
        plan = "Medicaid Managed Care" if rng.random() < 0.7 else "Medicaid Fee-for-Service"
    else:
        payer = rng.choice(COMMERCIAL_PAYERS)
        plan = f"{payer} {rng.choice(COMMERCIAL_PLANS)}"
    current = CoverageRec(
        new_uuid(rng), category, payer, plan, _member_id(rng, category), start, None, "active", 1
    )
    if rng.random() < 0.15 and start - person.birth_date > datetime.timedelta(days=800):
        # A plan the patient had before this one, now ended: the history a CRM keeps.
        old_start = max(person.birth_date, start - datetime.timedelta(days=rng.randint(365, 1500)))
        old_payer = rng.choice(COMMERCIAL_PAYERS)
        previous = CoverageRec(
            new_uuid(rng),
            "commercial",
            old_payer,
            f"{old_payer} PPO",
            _member_id(rng, "commercial"),
            old_start,
            start - datetime.timedelta(days=1),
            "cancelled",
            2,
        )
        return (current, previous)
    return (current,)
