"""The practice the demo patients attend: clinic locations, providers and visit types.

The practice grows with the panel (about one clinician per 1,500 patients, a normal
primary-care panel size), so a large demo does not give each provider an impossible
schedule.
"""

from __future__ import annotations

import random

from careloop.demo.people import new_uuid
from careloop.demo.records import AppointmentTypeRec, LocationRec, Practice, ProviderRec

PANEL_SIZE = 1500
MIN_PROVIDERS = 8
MAX_PROVIDERS = 2000

LOCATIONS = (
    (
        "Lincoln Park Clinic",
        "America/Chicago",
        "2400 N Clark St",
        "Chicago",
        "IL",
        "60614",
        "(312) 555-0100",
    ),
    (
        "Capitol Hill Clinic",
        "America/Denver",
        "1200 E Colfax Ave",
        "Denver",
        "CO",
        "80218",
        "(303) 555-0100",
    ),
    (
        "Camelback Clinic",
        "America/Phoenix",
        "4300 E Camelback Rd",
        "Phoenix",
        "AZ",
        "85018",
        "(602) 555-0100",
    ),
    (
        "Park Slope Clinic",
        "America/New_York",
        "350 7th Ave",
        "Brooklyn",
        "NY",
        "11215",
        "(718) 555-0100",
    ),
)

PROVIDER_GIVEN = (
    "Amara",
    "Benjamin",
    "Carmen",
    "Daniel",
    "Elena",
    "Farid",
    "Grace",
    "Hiroshi",
    "Ingrid",
    "Javier",
    "Kavya",
    "Lauren",
    "Marcus",
    "Nadia",
    "Owen",
    "Paulina",
    "Rafael",
    "Sunita",
    "Tobias",
    "Yolanda",
    "Zeynep",
    "Chinonso",
    "Mateus",
    "Åsa",
)
PROVIDER_FAMILY = (
    "Okafor",
    "Lindqvist",
    "Ramírez",
    "Chen",
    "Goldberg",
    "Haddad",
    "Kowalczyk",
    "Nakamura",
    "Patel",
    "Sørensen",
    "Fitzgerald",
    "Mensah",
    "Delgado",
    "Novak",
    "Abernathy",
    "Bianchi",
    "Castellanos",
    "Dubois",
    "Eriksen",
    "Van der Berg",
    "Whitfield-Hayes",
    "Iyer",
    "Moreau",
    "Achebe",
)
# (specialty, credential, share of clinicians, sees children)
ROLES = (
    ("Family Medicine", "MD", 35, True),
    ("Internal Medicine", "MD", 25, False),
    ("Pediatrics", "MD", 15, True),
    ("Family Medicine", "DO", 8, True),
    ("Nurse Practitioner, Family", "FNP-C", 12, True),
    ("Physician Assistant, Medical", "PA-C", 5, False),
)

APPOINTMENT_TYPES = (
    AppointmentTypeRec("new-patient", "New patient visit", 30, False, True, True, "99203"),
    AppointmentTypeRec(
        "new-patient-complex", "New patient visit, complex", 45, False, True, False, "99204"
    ),
    AppointmentTypeRec("follow-up", "Follow-up visit", 20, False, False, True, "99213"),
    AppointmentTypeRec(
        "follow-up-extended", "Follow-up visit, extended", 30, False, False, False, "99214"
    ),
    AppointmentTypeRec("complex-visit", "Complex care visit", 40, False, False, False, "99215"),
    AppointmentTypeRec("nurse-visit", "Nurse visit", 15, False, False, False, "99211"),
    AppointmentTypeRec("annual-physical", "Annual physical", 40, False, False, True, "99396"),
    AppointmentTypeRec("well-child", "Well-child visit", 30, False, False, True, "99393"),
    AppointmentTypeRec(
        "awv-initial", "Medicare annual wellness visit, initial", 45, False, False, False, "G0438"
    ),
    AppointmentTypeRec(
        "awv-subsequent", "Medicare annual wellness visit", 30, False, False, True, "G0439"
    ),
    AppointmentTypeRec("telehealth", "Video visit", 20, True, False, True, "99213"),
    AppointmentTypeRec(
        "telehealth-extended", "Video visit, extended", 30, True, False, False, "99214"
    ),
)
APPOINTMENT_TYPE_BY_CODE = {t.code: t for t in APPOINTMENT_TYPES}


def npi_check_digit(base9: str) -> str:
    """The Luhn check digit of an NPI, computed over the 80840 card-issuer prefix + 9 digits."""
    digits = [int(d) for d in "80840" + base9]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if position % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return str((10 - total % 10) % 10)


def provider_count(*, patients: int) -> int:
    return max(MIN_PROVIDERS, min(MAX_PROVIDERS, -(-patients // PANEL_SIZE)))


def build_practice(*, seed: int, patients: int, name: str) -> Practice:
    rng = random.Random(f"careloop-demo:{seed}:practice")  # noqa: S311 - synthetic data, not secrets
    locations = tuple(
        LocationRec(new_uuid(rng), loc_name, tz, line, city, state, postal, phone)
        for loc_name, tz, line, city, state, postal, phone in LOCATIONS
    )
    count = provider_count(patients=patients)
    bases = rng.sample(range(100_000_000, 300_000_000), count)
    providers: list[ProviderRec] = []
    for i, base in enumerate(bases):
        # The first clinicians cover every location with one adult and one child-capable role.
        if i < 2 * len(locations):
            role = ROLES[0] if i % 2 == 0 else ROLES[1]
        else:
            role = rng.choices(ROLES, weights=[r[2] for r in ROLES])[0]
        specialty, credential, _, pediatric = role
        base9 = str(base)
        providers.append(
            ProviderRec(
                id=new_uuid(rng),
                given=rng.choice(PROVIDER_GIVEN),
                family=rng.choice(PROVIDER_FAMILY),
                credential=credential,
                npi=base9 + npi_check_digit(base9),
                specialty=specialty,
                location_id=locations[i % len(locations)].id,
                pediatric=pediatric,
            )
        )
    return Practice(
        organization_id=new_uuid(rng),
        name=name,
        locations=locations,
        providers=tuple(providers),
        appointment_types=APPOINTMENT_TYPES,
    )
