"""Class-I fields are sealed per row and column, and searchable only by blind index."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection

from careloop.core.clock import now
from careloop.patients.models import ContactPoint, ContactSystem, Patient
from careloop.security import crypto
from careloop.security.fields import blind_value


def make_patient(given: str = "Ana", family: str = "Muñoz-Pérez") -> Patient:
    patient = Patient(
        given_name=given,
        family_name=family,
        birth_date=datetime.date(1980, 5, 17),
        created_at=now(),
        updated_at=now(),
    )
    patient.save()
    return patient


def raw_column(table: str, column: str, row_id: object) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {connection.ops.quote_name(column)} FROM {connection.ops.quote_name(table)} "
            "WHERE id = %s",
            [row_id if connection.vendor == "postgresql" else row_id.hex],  # type: ignore[attr-defined]
        )
        return bytes(cursor.fetchone()[0])


@pytest.mark.django_db
def test_names_round_trip_but_are_not_stored_in_plaintext() -> None:
    patient = make_patient()
    stored = raw_column("patients_patient", "family_name", patient.pk)
    assert b"Mu" not in stored and "Muñoz".encode() not in stored
    assert Patient.objects.get(pk=patient.pk).family_name == "Muñoz-Pérez"


@pytest.mark.django_db
def test_a_ciphertext_moved_to_another_row_does_not_open() -> None:
    first, second = make_patient(), make_patient(given="Bea", family="Stone")
    stolen = raw_column("patients_patient", "family_name", first.pk)
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(stolen, table="patients_patient", column="family_name", row_id=second.pk)


@pytest.mark.django_db
def test_a_ciphertext_moved_to_another_column_does_not_open() -> None:
    patient = make_patient()
    stolen = raw_column("patients_patient", "family_name", patient.pk)
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(stolen, table="patients_patient", column="given_name", row_id=patient.pk)


@pytest.mark.django_db
def test_a_tampered_ciphertext_does_not_open() -> None:
    patient = make_patient()
    stolen = bytearray(raw_column("patients_patient", "family_name", patient.pk))
    stolen[-1] ^= 0x01
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(
            bytes(stolen), table="patients_patient", column="family_name", row_id=patient.pk
        )


@pytest.mark.django_db
def test_the_same_value_seals_differently_each_time() -> None:
    first, second = make_patient(family="Stone"), make_patient(family="Stone")
    assert raw_column("patients_patient", "family_name", first.pk) != raw_column(
        "patients_patient", "family_name", second.pk
    )


@pytest.mark.django_db
def test_blind_index_finds_a_name_whatever_its_case_accents_and_spacing() -> None:
    patient = make_patient()
    for query in ["muñoz-pérez", "MUNOZ PEREZ", "  Munoz-Perez "]:
        found = Patient.objects.filter(family_name_bidx=blind_value("name", query))
        assert list(found) == [patient]


@pytest.mark.django_db
def test_blind_index_finds_a_phone_in_any_us_format_and_an_email_in_any_case() -> None:
    patient = make_patient()
    ContactPoint(patient=patient, system=ContactSystem.PHONE, value="(312) 555-0142").save()
    ContactPoint(patient=patient, system=ContactSystem.EMAIL, value="Ana.M@Example.org").save()
    for query in ["+1 312 555 0142", "312.555.0142", "13125550142", "ana.m@example.ORG"]:
        hits = ContactPoint.objects.filter(value_bidx=blind_value("contact", query))
        assert [c.patient_id for c in hits] == [patient.pk], query


@pytest.mark.django_db
def test_bulk_paths_that_would_skip_row_binding_are_refused() -> None:
    patient = make_patient()
    with pytest.raises(TypeError, match="encrypted per row"):
        Patient.objects.filter(pk=patient.pk).update(family_name="Plain")
    with pytest.raises(TypeError, match="encrypted per row"):
        list(Patient.objects.filter(family_name="Muñoz-Pérez"))


@pytest.mark.django_db
def test_an_unchanged_value_is_not_resealed_on_save() -> None:
    patient = Patient.objects.get(pk=make_patient().pk)
    before = raw_column("patients_patient", "family_name", patient.pk)
    patient.lifecycle_stage = "preventive"
    patient.save()
    assert raw_column("patients_patient", "family_name", patient.pk) == before
