"""A practice for the portal's appointment tests: every value a test checks is visible.

East Side Clinic (New York) with Dr. Maya Chen on Mondays 09:00-12:00; a self-bookable
30-minute check-up, a new-patient visit, a video visit and a procedure only staff may
book. Ana has a portal account; the clock is the Friday before (`AT`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.test import Client

from careloop.core import clock
from careloop.outreach.templates import templates_install_builtin
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    AppointmentType,
    Location,
    Provider,
)
from careloop.security.models import Role, User
from tests.patients.builders import add_contact, make_patient, make_provider, make_user
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, local, weekly
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

__all__ = ["AT", "MONDAY_BEFORE_DST", "World", "local", "make_world", "portal_user", "signed_in"]


@dataclass
class World:
    clinic: Location
    doctor: Provider
    checkup: AppointmentType
    new_visit: AppointmentType
    video: AppointmentType
    procedure: AppointmentType
    desk: User
    ana: Patient
    ana_user: User


def portal_user(patient: Patient, username: str) -> User:
    """`patient` with a portal account (signed in by `signed_in`, not through pages)."""
    user = staff_user(Role.PATIENT, username)
    PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())
    return user


def signed_in(user: User) -> Client:
    return force_verified_login(Client(), user)


def make_world() -> World:
    templates_install_builtin()
    clinic = Location.objects.create(
        name="East Side Clinic",
        time_zone="America/New_York",
        address="12 Grand St, New York NY",
        phone="(212) 555-0100",
    )
    doctor = make_provider(clinic)
    weekly(doctor, clinic, 0, datetime.time(9), datetime.time(12))
    checkup = AppointmentType.objects.create(
        code="checkup", name="Check-up", minutes=30, self_bookable=True
    )
    new_visit = AppointmentType.objects.create(
        code="new-patient",
        name="New patient visit",
        minutes=30,
        new_patient=True,
        self_bookable=True,
    )
    video = AppointmentType.objects.create(
        code="video", name="Video visit", minutes=30, telehealth=True, self_bookable=True
    )
    procedure = AppointmentType.objects.create(code="procedure", name="Procedure", minutes=30)
    ana = make_patient("Ana", "Alvarez", datetime.date(1960, 2, 3), address_line="5 Elm St")
    add_contact(ana, "email", "ana.alvarez@example.org", verified=True, can_email=True)
    add_contact(ana, "phone", "+1 212 555 0142", verified=True, can_sms=True)
    return World(
        clinic=clinic,
        doctor=doctor,
        checkup=checkup,
        new_visit=new_visit,
        video=video,
        procedure=procedure,
        desk=make_user(Role.FRONT_DESK),
        ana=ana,
        ana_user=portal_user(ana, "ana-portal"),
    )


def visit(
    world: World,
    patient: Patient,
    start: datetime.datetime,
    *,
    kind: AppointmentType | None = None,
    status: str = AppointmentStatus.BOOKED,
) -> Appointment:
    """An appointment row as the EHR or staff left it."""
    kind = kind or world.checkup
    return Appointment.objects.create(
        patient=patient,
        provider=world.doctor,
        location=world.clinic,
        appointment_type=kind,
        start=start,
        end=start + datetime.timedelta(minutes=kind.minutes),
        status=status,
        created_at=clock.now(),
    )
