"""Postal addresses are stored USPS-style and set the patient's time zone."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from careloop.core.clock import now
from careloop.patients.address import AddressError, address_normalize, time_zone_for
from careloop.patients.models import Patient
from careloop.security.models import AuditEvent, Role, User
from tests.security.personas import force_verified_login


@pytest.mark.parametrize(
    ("line", "city", "state", "zip_code", "expected"),
    [
        (
            "1600 n. Pennsylvania avenue nw apt 4b",
            "washington",
            "dc",
            "20500-0003",
            ("1600 N PENNSYLVANIA AVE NW APT 4B", "WASHINGTON", "DC", "20500-0003"),
        ),
        (
            "742 Evergreen Terrace",
            "Springfield ",
            "il",
            "62704",
            ("742 EVERGREEN TER", "SPRINGFIELD", "IL", "62704"),
        ),
        (
            "12 West Main Street, Suite 200",
            "El  Paso",
            "TX",
            "799011234",
            ("12 W MAIN ST STE 200", "EL PASO", "TX", "79901-1234"),
        ),
        ("PO Box 123", "Juneau", "AK", "99801", ("PO BOX 123", "JUNEAU", "AK", "99801")),
    ],
)
def test_addresses_are_written_the_usps_way(
    line: str, city: str, state: str, zip_code: str, expected: tuple[str, str, str, str]
) -> None:
    address = address_normalize(line=line, city=city, state=state, postal_code=zip_code)
    assert (address.line, address.city, address.state, address.postal_code) == expected


@pytest.mark.parametrize(
    ("line", "state", "zip_code", "message"),
    [
        ("Main Street", "TX", "75001", "house number"),
        ("12 Main St", "XX", "75001", "two-letter"),
        ("12 Main St", "TX", "7500", "ZIP code"),
    ],
)
def test_unreadable_addresses_say_what_is_wrong(
    line: str, state: str, zip_code: str, message: str
) -> None:
    with pytest.raises(AddressError, match=message):
        address_normalize(line=line, city="Dallas", state=state, postal_code=zip_code)


@pytest.mark.parametrize(
    ("state", "zip_code", "zone"),
    [
        ("FL", "33101", "America/New_York"),  # Miami
        ("FL", "32501", "America/Chicago"),  # Pensacola, the panhandle
        ("TX", "75001", "America/Chicago"),
        ("TX", "79901", "America/Denver"),  # El Paso
        ("AZ", "85001", "America/Phoenix"),
        ("IN", "46201", "America/Indiana/Indianapolis"),
        ("IN", "46320", "America/Chicago"),  # Hammond, northwest Indiana
        ("HI", "96813", "Pacific/Honolulu"),
        ("OR", "97914", "America/Boise"),  # Ontario, Malheur County
    ],
)
def test_the_time_zone_follows_the_state_and_zip(state: str, zip_code: str, zone: str) -> None:
    assert time_zone_for(state=state, postal_code=zip_code) == zone


@pytest.mark.django_db
def test_saving_an_address_on_the_profile_normalises_it_and_moves_the_time_zone(
    client: Client,
) -> None:
    desk = User.objects.create_user(username="desk.zoe", password="x" * 20, role=Role.FRONT_DESK)
    force_verified_login(client, desk)
    patient = Patient(
        given_name="Lena",
        family_name="Ortiz",
        birth_date=datetime.date(1990, 3, 3),
        time_zone="America/New_York",
        created_at=now(),
        updated_at=now(),
    )
    patient.save()
    response = client.post(
        f"/patients/{patient.pk}/address/",
        {
            "line": "400 south el paso street",
            "city": "el paso",
            "state": "tx",
            "postal_code": "79901",
        },
        secure=True,
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert (patient.address_line, patient.city, patient.state) == (
        "400 S EL PASO ST",
        "EL PASO",
        "TX",
    )
    assert patient.time_zone == "America/Denver"
    assert AuditEvent.objects.filter(action="patient.update", patient_id=patient.pk).exists()
    assert patient.timeline.filter(summary__contains="America/Denver").exists()
    bad = client.post(
        f"/patients/{patient.pk}/address/",
        {"line": "nowhere", "city": "x", "state": "tx", "postal_code": "79901"},
        secure=True,
    )
    assert bad.status_code == 200 and "house number" in bad.content.decode()


@pytest.mark.django_db
def test_a_clinician_may_not_change_the_address(client: Client) -> None:
    clinician = User.objects.create_user(username="dr.q", password="x" * 20, role=Role.CLINICIAN)
    force_verified_login(client, clinician)
    patient = Patient(
        given_name="Lena",
        family_name="Ortiz",
        birth_date=datetime.date(1990, 3, 3),
        created_at=now(),
        updated_at=now(),
    )
    patient.save()
    response = client.get(f"/patients/{patient.pk}/address/", secure=True)
    assert response.status_code in {403, 404}
