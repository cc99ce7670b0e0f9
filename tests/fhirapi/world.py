"""A small practice for the FHIR API tests: two patients with records of every type."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from careloop.clinical.models import ClinicalFact
from careloop.consent.models import ConsentRecord
from careloop.core import clock
from careloop.patients.models import Patient
from careloop.scheduling.models import Provider
from tests.patients.builders import (
    add_appointment,
    add_contact,
    add_coverage,
    add_mrn,
    make_location,
    make_patient,
    make_provider,
)

LOINC = "http://loinc.org"
A1C = "4548-4"


@dataclass(frozen=True)
class Practice:
    provider: Provider
    ada: Patient
    ben: Patient


def observation(patient: Patient, code: str, at: datetime.datetime, value: float) -> ClinicalFact:
    return ClinicalFact.objects.create(
        patient=patient,
        kind="observation",
        system=LOINC,
        code=code,
        display="Hemoglobin A1c",
        status="final",
        category="laboratory",
        effective_start=at,
        value_num=value,
        unit="%",
    )


def build_practice(appointments: int = 5) -> Practice:
    provider = make_provider(make_location())
    ada = make_patient("Ada", "Lovelace", datetime.date(1961, 12, 10), primary_provider=provider)
    ben = make_patient("Ben", "Okafor", datetime.date(1980, 3, 4), primary_provider=provider)
    add_mrn(ada, "MRN-1001")
    add_contact(ada, "phone", "+1 217 555 0101")
    add_coverage(ada, payer_category="commercial", payer_name="Prairie Health", member_id="M-77")
    start = datetime.datetime(2025, 3, 1, 15, 0, tzinfo=datetime.UTC)
    for number in range(appointments):
        add_appointment(ada, provider, start + datetime.timedelta(days=number))
    add_appointment(ben, provider, start)
    observation(ada, A1C, datetime.datetime(2024, 6, 1, tzinfo=datetime.UTC), 7.9)
    observation(ada, A1C, datetime.datetime(2025, 1, 15, tzinfo=datetime.UTC), 6.8)
    observation(ben, A1C, datetime.datetime(2025, 1, 20, tzinfo=datetime.UTC), 5.4)
    ConsentRecord.objects.create(
        patient=ada,
        kind="treatment",
        status="granted",
        period_start=clock.now(),
        capture_method="verbal",
        captured_at=clock.now(),
        recorded_at=clock.now(),
    )
    return Practice(provider=provider, ada=ada, ben=ben)
