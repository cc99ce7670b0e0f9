"""A small clinic with two care teams, and staff users for the permission tests."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from careloop.patients.models import Patient
from careloop.scheduling.models import Location, Provider
from careloop.security.models import User
from tests.patients.builders import make_location, make_patient, make_provider


def staff_user(role: str, username: str | None = None, **fields: Any) -> User:
    """A user without a usable password: these tests sign in with a verified session
    (tests.security.personas.force_verified_login), so no Argon2 hashing per user."""
    return User.objects.create(username=username or f"{role}-user", role=role, **fields)


@dataclass(frozen=True)
class Clinic:
    """Two care teams: Dr Chen's at Main Street, Dr Okafor's at Lakeside."""

    main: Location
    lakeside: Location
    chen: Provider
    okafor: Provider
    ana: Patient  # Dr Chen's patient
    ben: Patient  # Dr Okafor's patient, at Lakeside
    cleo: Patient  # no primary provider, home location Lakeside


def make_clinic() -> Clinic:
    main = make_location("Main Street Clinic")
    lakeside = make_location("Lakeside Clinic")
    chen = make_provider(main, "Dr. Maya Chen")
    okafor = make_provider(lakeside, "Dr. Ike Okafor")
    ana = make_patient("Ana", "Alvarez", datetime.date(1960, 2, 3), primary_provider=chen)
    ben = make_patient(
        "Ben", "Brooks", datetime.date(1971, 5, 6), primary_provider=okafor, home_location=lakeside
    )
    cleo = make_patient("Cleo", "Castro", datetime.date(1985, 8, 9), home_location=lakeside)
    return Clinic(main, lakeside, chen, okafor, ana, ben, cleo)
