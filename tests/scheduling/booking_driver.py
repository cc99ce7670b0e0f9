"""One client of the concurrency test, as a `careloop`-configured subprocess.

    python -m tests.scheduling.booking_driver setup COUNT
        makes a practice (one provider, open Mondays) and COUNT patients; prints JSON
        with their ids and the slot everyone will ask for.
    python -m tests.scheduling.booking_driver setup-room COUNT
        the same with two providers and a visit type that needs the location's one room;
        the JSON names both providers ("providers"), for the clients to split between.
    python -m tests.scheduling.booking_driver book GO_FILE PATIENT_ID
        says it is ready (a `ready-<id>` file beside GO_FILE), waits until GO_FILE
        exists, books the shared slot for the patient and prints
        `won <appointment id>` or `taken <number of alternatives offered>`.

Separate processes, so each booking has its own database connection and the race is
real; nothing of class I is printed.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careloop.settings")
django.setup()

from careloop.patients.models import Patient  # noqa: E402 - after django.setup()
from careloop.scheduling.booking import SlotTaken, appointment_book  # noqa: E402
from careloop.scheduling.models import (  # noqa: E402
    AppointmentType,
    Location,
    Provider,
    Resource,
    ResourceKind,
    WeeklyAvailability,
)
from careloop.security.models import Role, User  # noqa: E402
from tests.patients.builders import make_patient, make_user  # noqa: E402

# A Monday well ahead of any test clock, inside the type's horizon from "now".
SLOT_DAYS_AHEAD = 7


def setup(count: int) -> None:
    location = Location.objects.create(name="Race Clinic", time_zone="America/New_York")
    provider = Provider.objects.create(
        display_name="Dr. Race", npi="1999999999", specialty="Family medicine", location=location
    )
    kind = AppointmentType.objects.create(code="race-visit", name="Race visit", minutes=30)
    today = datetime.datetime.now(tz=datetime.UTC).date()
    monday = today + datetime.timedelta(days=SLOT_DAYS_AHEAD - today.weekday())
    WeeklyAvailability.objects.create(
        provider=provider,
        location=location,
        weekday=0,
        start_time=datetime.time(9),
        end_time=datetime.time(12),
        valid_from=today,
    )
    user = make_user(Role.FRONT_DESK, username="race-desk")
    patients = [
        make_patient("Racer", f"Number{n}", datetime.date(1980, 1, 1)) for n in range(count)
    ]
    start = datetime.datetime.combine(monday, datetime.time(9), ZoneInfo("America/New_York"))
    out = {
        "user": str(user.pk),
        "provider": str(provider.pk),
        "location": str(location.pk),
        "type": kind.pk,
        "start": start.isoformat(),
        "patients": [str(p.pk) for p in patients],
    }
    print(json.dumps(out))


def setup_room(count: int) -> None:
    """`setup`, plus a second provider with the same hours, one room, and the type
    needing it: the providers are free, the room is what the clients race for."""
    location = Location.objects.create(name="Race Clinic", time_zone="America/New_York")
    kind = AppointmentType.objects.create(
        code="race-procedure", name="Race procedure", minutes=30, resource_kind=ResourceKind.ROOM
    )
    Resource.objects.create(location=location, name="Procedure room", kind=ResourceKind.ROOM)
    today = datetime.datetime.now(tz=datetime.UTC).date()
    monday = today + datetime.timedelta(days=SLOT_DAYS_AHEAD - today.weekday())
    providers = []
    for n in range(2):
        provider = Provider.objects.create(
            display_name=f"Dr. Race {n}",
            npi=f"199999999{n}",
            specialty="Family medicine",
            location=location,
        )
        WeeklyAvailability.objects.create(
            provider=provider,
            location=location,
            weekday=0,
            start_time=datetime.time(9),
            end_time=datetime.time(12),
            valid_from=today,
        )
        providers.append(str(provider.pk))
    user = make_user(Role.FRONT_DESK, username="race-desk")
    patients = [
        make_patient("Racer", f"Number{n}", datetime.date(1980, 1, 1)) for n in range(count)
    ]
    start = datetime.datetime.combine(monday, datetime.time(9), ZoneInfo("America/New_York"))
    out = {
        "user": str(user.pk),
        "providers": providers,
        "location": str(location.pk),
        "type": kind.pk,
        "start": start.isoformat(),
        "patients": [str(p.pk) for p in patients],
    }
    print(json.dumps(out))


def book(go: Path, patient_id: str, plan: dict[str, str]) -> None:
    user = User.objects.get(pk=plan["user"])
    patient = Patient.objects.get(pk=uuid.UUID(patient_id))
    provider = Provider.objects.get(pk=plan["provider"])
    location = Location.objects.get(pk=plan["location"])
    kind = AppointmentType.objects.get(pk=plan["type"])
    start = datetime.datetime.fromisoformat(plan["start"])
    (go.parent / f"ready-{patient_id}").touch()
    while not go.exists():
        time.sleep(0.002)
    try:
        appointment = appointment_book(
            actor=user,
            patient=patient,
            appointment_type=kind,
            provider=provider,
            location=location,
            start=start,
        )
    except SlotTaken as taken:
        print(f"taken {len(taken.alternatives)}")
        return
    print(f"won {appointment.pk}")


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(int(sys.argv[2]))
    elif sys.argv[1] == "setup-room":
        setup_room(int(sys.argv[2]))
    else:
        book(Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]))
