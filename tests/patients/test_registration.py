"""Registering patients without creating duplicates, and merging the ones that slip in."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from careloop.clinical.models import ClinicalFact
from careloop.core.clock import now
from careloop.patients.merge import MergeRefused, patient_merge
from careloop.patients.models import ContactPoint, Patient, PatientMerge
from careloop.patients.registration import (
    DuplicateSuspected,
    Registration,
    patient_register,
)
from careloop.security.models import AuditEvent, Role, User
from tests.security.personas import force_verified_login

BIRTH = datetime.date(1984, 2, 29)


@pytest.fixture
def desk(client: Client) -> User:
    user = User.objects.create_user(username="desk.ana", password="x" * 20, role=Role.FRONT_DESK)
    force_verified_login(client, user)
    return user


def registration(**changes: object) -> Registration:
    fields: dict[str, object] = {
        "given_name": "Marisol",
        "family_name": "Quintero",
        "birth_date": BIRTH,
        "phone": "(512) 555-0188",
        "email": "marisol.q@example.org",
    }
    fields.update(changes)
    return Registration(**fields)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_registering_a_new_patient_creates_the_record_with_contacts(desk: User) -> None:
    patient = patient_register(actor=desk, registration=registration(mrn="a-100 7"))
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.given_name, stored.family_name, stored.birth_date) == (
        "Marisol",
        "Quintero",
        BIRTH,
    )
    assert sorted(c.value for c in ContactPoint.objects.filter(patient=patient)) == [
        "+15125550188",
        "marisol.q@example.org",
    ]
    assert patient.identifiers.get().value == "A-1007"
    assert AuditEvent.objects.filter(action="patient.create", patient_id=patient.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "why"),
    [
        (
            {"given_name": "Marisol", "family_name": "Quintero", "phone": "", "email": ""},
            "similar name",
        ),
        (
            {"given_name": "Marisól", "family_name": "Quinteró", "phone": "", "email": ""},
            "similar name",
        ),
        (
            {"given_name": "Quintero", "family_name": "Marisol", "phone": "", "email": ""},
            "similar name",
        ),
        (
            {"given_name": "Marisa", "family_name": "Quintero", "phone": "", "email": ""},
            "similar name",
        ),
        (
            {
                "given_name": "Rosa",
                "family_name": "Diaz",
                "birth_date": datetime.date(1990, 1, 1),
                "email": "",
            },
            "same phone number",
        ),
        (
            {
                "given_name": "Rosa",
                "family_name": "Diaz",
                "birth_date": datetime.date(1990, 1, 1),
                "phone": "",
                "email": "MARISOL.Q@example.org",
            },
            "same e-mail address",
        ),
    ],
)
def test_a_likely_duplicate_stops_registration_and_names_the_reason(
    desk: User, changes: dict[str, object], why: str
) -> None:
    existing = patient_register(actor=desk, registration=registration())
    with pytest.raises(DuplicateSuspected) as stopped:
        patient_register(actor=desk, registration=registration(**changes))
    assert [c.patient.pk for c in stopped.value.candidates] == [existing.pk]
    assert why in stopped.value.candidates[0].why
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_a_different_person_with_the_same_birthday_is_not_a_duplicate(desk: User) -> None:
    patient_register(actor=desk, registration=registration())
    other = patient_register(
        actor=desk,
        registration=registration(given_name="Thomas", family_name="Becker", phone="", email=""),
    )
    assert Patient.objects.count() == 2 and other.family_name == "Becker"


@pytest.mark.django_db
def test_staff_can_register_anyway_with_a_reason_that_is_audited_encrypted(desk: User) -> None:
    patient_register(actor=desk, registration=registration())
    twin = patient_register(
        actor=desk,
        registration=registration(given_name="Marisela", phone="", email=""),
        not_a_duplicate_because="Twin sister, confirmed by ID at the desk",
    )
    event = AuditEvent.objects.get(action="patient.create", patient_id=twin.pk)
    assert event.reason.text == "Twin sister, confirmed by ID at the desk"


@pytest.mark.django_db
def test_the_registration_page_shows_candidates_instead_of_creating(
    client: Client, desk: User
) -> None:
    existing = patient_register(actor=desk, registration=registration())
    form = {
        "given_name": "Marisol",
        "family_name": "Quintero",
        "birth_date": BIRTH.isoformat(),
        "sex": "female",
        "preferred_language": "es",
        "time_zone": "America/Chicago",
    }
    response = client.post("/patients/new/", form, secure=True)
    assert response.status_code == 200
    assert "may be a patient we already have" in response.content.decode()
    assert f"/patients/{existing.pk}/" in response.content.decode()
    assert Patient.objects.count() == 1
    form["not_a_duplicate_because"] = "Different person: checked the insurance card"
    created = client.post("/patients/new/", form, secure=True)
    assert created.status_code == 302 and Patient.objects.count() == 2


@pytest.mark.django_db
def test_bad_registration_input_is_a_form_error_not_a_crash(client: Client, desk: User) -> None:
    response = client.post(
        "/patients/new/",
        {
            "given_name": "",
            "family_name": "X",
            "birth_date": "02/30/1990",
            "phone": "12",
            "sex": "female",
            "preferred_language": "en",
            "time_zone": "Mars/Olympus",
        },
        secure=True,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a US phone number" in html and "This field is required" in html
    assert Patient.objects.count() == 0


@pytest.mark.django_db
def test_marketing_may_not_register_patients(client: Client) -> None:
    user = User.objects.create_user(username="mk", password="x" * 20, role=Role.MARKETING)
    force_verified_login(client, user)
    assert client.get("/patients/new/", secure=True).status_code == 403


@pytest.mark.django_db
def test_merging_moves_every_history_to_the_survivor_and_keeps_the_duplicate(
    client: Client, desk: User
) -> None:
    survivor = patient_register(actor=desk, registration=registration())
    duplicate = patient_register(
        actor=desk,
        registration=registration(given_name="Mari", phone="5125550199", email=""),
        not_a_duplicate_because="registered in a hurry",
    )
    ClinicalFact.objects.create(
        patient=duplicate,
        kind="observation",
        system="http://loinc.org",
        code="4548-4",
        value_num=7.1,
        effective_start=now(),
    )
    response = client.post(f"/patients/{survivor.pk}/merge/{duplicate.pk}/", secure=True)
    assert response.status_code == 302
    assert ClinicalFact.objects.get().patient_id == survivor.pk
    assert ContactPoint.objects.filter(patient=survivor).count() == 3
    duplicate.refresh_from_db()
    assert duplicate.merged_into_id == survivor.pk
    merge = PatientMerge.objects.get()
    assert merge.moved["clinical.ClinicalFact"] == 1
    assert AuditEvent.objects.filter(action="patient.merge").count() == 2
    with pytest.raises(MergeRefused):
        patient_merge(actor=desk, survivor_id=survivor.pk, duplicate_id=duplicate.pk)


@pytest.mark.django_db
def test_a_merged_duplicate_is_no_longer_listed_or_found(client: Client, desk: User) -> None:
    survivor = patient_register(actor=desk, registration=registration())
    duplicate = patient_register(
        actor=desk,
        registration=registration(given_name="Mari", phone="", email=""),
        not_a_duplicate_because="registered in a hurry",
    )
    patient_merge(actor=desk, survivor_id=survivor.pk, duplicate_id=duplicate.pk)
    html = client.post("/patients/", {"q": "Quintero"}, secure=True).content.decode()
    assert f"/patients/{survivor.pk}/" in html and f"/patients/{duplicate.pk}/" not in html
