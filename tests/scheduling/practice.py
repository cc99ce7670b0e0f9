"""A hand-made practice for the scheduling tests: every value a test checks is visible."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from careloop.patients.models import Patient
from careloop.scheduling.models import (
    AppointmentType,
    Location,
    Provider,
    WeeklyAvailability,
)
from careloop.security.models import Role, User
from tests.patients.builders import make_patient, make_provider, make_user

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
UTC = datetime.UTC
# Mondays around the 2026 US spring-forward change (Sunday 8 March).
MONDAY_BEFORE_DST = datetime.date(2026, 3, 2)
DST_SUNDAY = datetime.date(2026, 3, 8)
MONDAY_AFTER_DST = datetime.date(2026, 3, 9)
# "Now" for most tests: the Friday before, well within the default horizon.
AT = datetime.datetime(2026, 2, 27, 12, tzinfo=UTC)


@dataclass
class Practice:
    clinic: Location
    west: Location
    doctor: Provider
    visit: AppointmentType
    desk: User
    patient: Patient


def local(
    day: datetime.date, hour: int, minute: int = 0, zone: ZoneInfo = NEW_YORK
) -> datetime.datetime:
    """A wall-clock time at a location, as the aware instant the services compare."""
    return datetime.datetime.combine(day, datetime.time(hour, minute), zone)


def weekly(
    provider: Provider,
    location: Location,
    weekday: int,
    opens: datetime.time,
    closes: datetime.time,
    since: datetime.date = datetime.date(2026, 1, 1),
) -> WeeklyAvailability:
    return WeeklyAvailability.objects.create(
        provider=provider,
        location=location,
        weekday=weekday,
        start_time=opens,
        end_time=closes,
        valid_from=since,
    )


def make_practice() -> Practice:
    """Dr. Maya Chen at the East Side clinic (New York) Mondays 09:00-12:00; a 30-minute
    visit; a front-desk user; one patient."""
    clinic = Location.objects.create(name="East Side Clinic", time_zone="America/New_York")
    west = Location.objects.create(name="Westside Telehealth Hub", time_zone="America/Los_Angeles")
    doctor = make_provider(clinic)
    visit = AppointmentType.objects.create(code="follow-up", name="Follow-up", minutes=30)
    weekly(doctor, clinic, 0, datetime.time(9), datetime.time(12))
    return Practice(
        clinic=clinic,
        west=west,
        doctor=doctor,
        visit=visit,
        desk=make_user(Role.FRONT_DESK),
        patient=make_patient("Ana", "Rivera", datetime.date(1970, 5, 4)),
    )
