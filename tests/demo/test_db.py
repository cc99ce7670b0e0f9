"""`careloop demo --format db`: rows the ORM reads back, through encryption and blind indexes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from careloop.clinical.models import ClinicalFact
from careloop.consent.models import ChannelOptIn, CommunicationPreference
from careloop.leads.models import Lead
from careloop.patients.models import ContactPoint, Coverage, Patient, PatientIdentifier
from careloop.referrals.models import Referral
from careloop.scheduling.models import Appointment, Provider
from careloop.security.fields import blind_value
from tests.demo.conftest import AS_OF, export, read_ndjson

pytestmark = pytest.mark.django_db


def load(*, patients: int, seed: int) -> None:
    call_command("demo", patients=patients, seed=seed, as_of=AS_OF, stdout=_Null())


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def canonical_dump() -> list[Any]:
    """Plaintext values read through the ORM, in an order that does not depend on insert ids."""
    dump: list[Any] = [
        (str(p.id), p.given_name, p.family_name, p.preferred_name, p.birth_date, p.sex,
         p.address_line, p.city, p.postal_code, p.state, p.time_zone, p.lifecycle_stage,
         p.primary_provider.npi if p.primary_provider else None, p.created_at)
        for p in Patient.objects.select_related("primary_provider").order_by("id")
    ]  # fmt: skip
    dump += sorted((str(c.id), c.value, c.system, c.use) for c in ContactPoint.objects.all())
    dump += sorted((str(i.id), i.value) for i in PatientIdentifier.objects.all())
    dump += sorted((str(c.id), c.member_id, c.payer_name) for c in Coverage.objects.all())
    dump += sorted(
        ClinicalFact.objects.values_list(
            "patient_id", "source_id", "kind", "code", "effective_start", "value_num", "value_code"
        )
    )
    dump += sorted(Appointment.objects.values_list("id", "start", "status", "provider__npi"))
    dump += sorted(ChannelOptIn.objects.values_list("patient_id", "channel", "purpose", "opted_in"))
    dump += sorted(
        (str(x.id), x.given_name, x.family_name, x.phone, x.email) for x in Lead.objects.all()
    )
    dump += sorted(Referral.objects.values_list("id", "status", "specialty"))
    return dump


def test_same_seed_loads_the_same_practice() -> None:
    load(patients=25, seed=3)
    first = canonical_dump()
    Patient.objects.all().delete()
    Lead.objects.all().delete()
    load(patients=25, seed=3)
    assert canonical_dump() == first
    assert len(first) > 25 * 10


def test_names_read_back_through_the_orm_and_are_found_by_blind_index(tmp_path: Path) -> None:
    load(patients=20, seed=5)
    exported = read_ndjson(export(tmp_path, patients=20, seed=5) / "Patient.ndjson")
    for resource in exported[:5]:
        patient = Patient.objects.get(id=resource["id"])
        assert patient.family_name == resource["name"][0]["family"]
        assert patient.given_name == resource["name"][0]["given"][0]
        found = Patient.objects.filter(
            family_name_bidx=blind_value("name", patient.family_name.upper())
        )
        assert patient in found
        mrn = resource["identifier"][0]["value"]
        identifier = PatientIdentifier.objects.get(value_bidx=blind_value("identifier", mrn))
        assert identifier.patient_id == patient.id
        assert identifier.value == mrn


def test_sealed_columns_hold_no_plaintext() -> None:
    load(patients=5, seed=5)
    patient = Patient.objects.first()
    assert patient is not None
    raw = Patient.objects.filter(id=patient.id).values_list("family_name", flat=True).get()
    assert patient.family_name.encode() not in bytes(raw)


def test_every_table_is_filled() -> None:
    load(patients=40, seed=2)
    assert Patient.objects.count() == 40
    assert CommunicationPreference.objects.count() == 40
    assert PatientIdentifier.objects.count() == 40
    for model in (ContactPoint, Coverage, ChannelOptIn, Appointment, ClinicalFact, Provider):
        assert model.objects.exists(), model.__name__
    kinds = set(ClinicalFact.objects.values_list("kind", flat=True))
    assert {"encounter", "condition", "observation", "immunization"} <= kinds
    bp = set(ClinicalFact.objects.filter(category="vital-signs").values_list("code", flat=True))
    assert {"8480-6", "8462-4"} <= bp


def test_a_second_run_on_a_filled_database_is_refused_in_one_line() -> None:
    load(patients=3, seed=1)
    with pytest.raises(CommandError, match="already has patients") as refused:
        load(patients=3, seed=1)
    assert "\n" not in str(refused.value)
    assert Patient.objects.count() == 3


def test_database_and_ndjson_describe_the_same_practice(tmp_path: Path) -> None:
    load(patients=15, seed=9)
    out = export(tmp_path, patients=15, seed=9)
    appointments = read_ndjson(out / "Appointment.ndjson")
    assert {str(a.id) for a in Appointment.objects.all()} == {a["id"] for a in appointments}
    encounters = read_ndjson(out / "Encounter.ndjson")
    stored = ClinicalFact.objects.filter(kind="encounter").values_list("source_id", flat=True)
    assert set(stored) == {e["id"] for e in encounters}
