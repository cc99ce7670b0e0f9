"""Interoperability: fhirpy, a FHIR client nobody here wrote, drives the API over a socket.

The test signs its own SMART Backend Services assertion, gets a token from the token
endpoint over HTTP, then reads a Patient, pages through Appointments (fhirpy follows
the `next` links itself) and searches Observations.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from fhir.resources.R4B import get_fhir_model_class
from fhirpy import SyncFHIRClient

from tests.fhirapi.clients import register
from tests.fhirapi.world import A1C, LOINC, build_practice

pytestmark = pytest.mark.django_db(transaction=True)


def test_fhirpy_authenticates_reads_pages_and_searches(live_server: Any) -> None:
    practice = build_practice(appointments=7)
    registered = register()
    base = f"{live_server.url}/fhir/r4"
    smart = requests.get(f"{base}/.well-known/smart-configuration", timeout=10).json()
    token_url = smart["token_endpoint"]
    answer = requests.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.read",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": registered.assertion(aud=token_url),
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    fhir = SyncFHIRClient(base, authorization=f"Bearer {answer.json()['access_token']}")

    patient = fhir.reference("Patient", str(practice.ada.pk)).to_resource()
    assert patient["name"][0]["family"] == "Lovelace"
    get_fhir_model_class("Patient").model_validate(patient.serialize())

    appointments = fhir.resources("Appointment").search(patient=str(practice.ada.pk)).limit(3)
    assert len(appointments.fetch()) == 3
    everything = appointments.fetch_all()
    assert len(everything) == 7 and len({a["id"] for a in everything}) == 7

    observations = (
        fhir.resources("Observation")
        .search(patient=str(practice.ada.pk), code=f"{LOINC}|{A1C}", category="laboratory")
        .search(date__ge="2025-01-01")
        .fetch_all()
    )
    assert [o["valueQuantity"]["value"] for o in observations] == [6.8]
