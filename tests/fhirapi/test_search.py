"""Read and search: valid FHIR out, PHI never in a URL, errors as OperationOutcome."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient
from fhir.resources.R4B import get_fhir_model_class

from careloop.security.models import AuditEvent
from tests.fhirapi.clients import bearer, register
from tests.fhirapi.world import A1C, LOINC, Practice, build_practice

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def practice() -> Practice:
    return build_practice()


@pytest.fixture
def http() -> tuple[HttpClient, dict[str, str]]:
    client = HttpClient()
    return client, bearer(client, register())


def get(http: tuple[HttpClient, dict[str, str]], url: str) -> Any:
    client, headers = http
    return client.get(url, secure=True, headers=headers)


def post(http: tuple[HttpClient, dict[str, str]], url: str, body: str) -> Any:
    client, headers = http
    return client.post(url, body, content_type=FORM, secure=True, headers=headers)


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def test_patient_read_is_valid_us_core_and_audited(http: Any, practice: Practice) -> None:
    response = get(http, f"/fhir/r4/Patient/{practice.ada.pk}")
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    patient = valid(response.json())
    assert patient["identifier"] and patient["name"][0]["family"] == "Lovelace"
    assert patient["gender"] == "unknown" and patient["birthDate"] == "1961-12-10"
    assert {"system": "phone", "value": "+1 217 555 0101", "use": "mobile", "rank": 1} in patient[
        "telecom"
    ]
    event = AuditEvent.objects.get(action="fhir.read")
    assert (event.patient_id, event.actor_kind) == (practice.ada.pk, "integration")


def test_every_type_reads_and_validates(http: Any, practice: Practice) -> None:
    for resource_type in ("Appointment", "Coverage", "Consent", "Observation"):
        bundle = get(http, f"/fhir/r4/{resource_type}?patient={practice.ada.pk}").json()
        assert bundle["entry"], resource_type
        valid(bundle)
        first = bundle["entry"][0]["resource"]
        read = get(http, f"/fhir/r4/{resource_type}/{first['id']}")
        assert read.json() == first


@pytest.mark.parametrize("bad", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_id_is_404_operation_outcome(http: Any, practice: Practice, bad: str) -> None:
    response = get(http, f"/fhir/r4/Patient/{bad}")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_name_search_in_the_url_is_refused_and_post_search_finds(
    http: Any, practice: Practice
) -> None:
    refused = get(http, "/fhir/r4/Patient?family=Lovelace")
    assert refused.status_code == 400 and "_search" in refused.json()["issue"][0]["diagnostics"]
    found = post(http, "/fhir/r4/Patient/_search", "family=lovelace&birthdate=1961-12-10")
    ids = [entry["resource"]["id"] for entry in found.json()["entry"]]
    assert ids == [str(practice.ada.pk)]
    assert "Lovelace" not in " ".join(link["url"] for link in found.json()["link"])
    by_mrn = post(http, "/fhir/r4/Patient/_search", "identifier=MRN-1001")
    assert [e["resource"]["id"] for e in by_mrn.json()["entry"]] == [str(practice.ada.pk)]


def test_paging_links_carry_only_a_cursor_and_walk_every_page(
    http: Any, practice: Practice
) -> None:
    url = f"/fhir/r4/Appointment?patient={practice.ada.pk}&_count=2"
    seen: list[str] = []
    pages = 0
    while url:
        bundle = get(http, url).json()
        pages += 1
        seen += [entry["resource"]["id"] for entry in bundle["entry"]]
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if nxt:
            assert set(nxt[0].split("?", 1)[1].split("=")[0:1]) == {"_cursor"}
        url = nxt[0].removeprefix("https://testserver") if nxt else ""
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    assert AuditEvent.objects.filter(action="fhir.search").count() == 3


def test_post_search_pages_too(http: Any, practice: Practice) -> None:
    bundle = post(http, "/fhir/r4/Patient/_search", "_count=1").json()
    nxt = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    second = get(http, nxt.removeprefix("https://testserver")).json()
    assert len(second["entry"]) == 1
    assert second["entry"][0]["resource"]["id"] != bundle["entry"][0]["resource"]["id"]


def test_count_is_capped(http: Any, practice: Practice) -> None:
    bundle = get(http, "/fhir/r4/Appointment?_count=100000").json()
    assert len(bundle["entry"]) == 6


def test_observation_search_by_patient_code_date_and_category(
    http: Any, practice: Practice
) -> None:
    url = (
        f"/fhir/r4/Observation?patient=Patient/{practice.ada.pk}&code={LOINC}|{A1C}"
        "&date=ge2025-01-01&category=laboratory"
    )
    bundle = valid(get(http, url).json())
    assert [entry["resource"]["valueQuantity"]["value"] for entry in bundle["entry"]] == [6.8]
    assert (
        get(http, f"/fhir/r4/Observation?code=http://snomed.info/sct|{A1C}").json().get("entry")
        == []
    )


def test_include_adds_the_appointments_patients(http: Any, practice: Practice) -> None:
    bundle = get(
        http, f"/fhir/r4/Appointment?patient={practice.ben.pk}&_include=Appointment:patient"
    ).json()
    modes = [
        (entry["search"]["mode"], entry["resource"]["resourceType"]) for entry in bundle["entry"]
    ]
    assert modes == [("match", "Appointment"), ("include", "Patient")]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/fhir/r4/Appointment?date=2025-02-30", 400),
        ("/fhir/r4/Appointment?date=yesterday", 400),
        ("/fhir/r4/Appointment?_count=many", 400),
        ("/fhir/r4/Appointment?_include=Appointment:practitioner", 400),
        ("/fhir/r4/Appointment?_format=xml", 406),
        ("/fhir/r4/Appointment?_cursor=00000000-0000-0000-0000-000000000000", 404),
        ("/fhir/r4/Medication", 404),
    ],
)
def test_bad_input_is_a_4xx_operation_outcome(
    http: Any, practice: Practice, url: str, status: int
) -> None:
    response = get(http, url)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


def test_unknown_parameters_are_ignored_unless_strict(http: Any, practice: Practice) -> None:
    client, headers = http
    assert get(http, "/fhir/r4/Appointment?flavour=mint").status_code == 200
    strict = client.get(
        "/fhir/r4/Appointment?flavour=mint",
        secure=True,
        headers={**headers, "Prefer": "handling=strict"},
    )
    assert strict.status_code == 400


def test_last_updated_filters_patients(http: Any, practice: Practice) -> None:
    assert len(get(http, "/fhir/r4/Patient?_lastUpdated=ge2000-01-01").json()["entry"]) == 2
    assert get(http, "/fhir/r4/Patient?_lastUpdated=lt2000-01-01").json()["entry"] == []


def test_metadata_lists_what_is_served(practice: Practice) -> None:
    statement = valid(HttpClient().get("/fhir/r4/metadata", secure=True).json())
    types = {resource["type"] for resource in statement["rest"][0]["resource"]}
    assert {"Patient", "Appointment", "Coverage", "Consent", "AuditEvent", "Observation"} <= types
    smart = HttpClient().get("/fhir/r4/.well-known/smart-configuration", secure=True).json()
    assert smart["token_endpoint"].endswith("/fhir/r4/auth/token")


def test_the_auditor_searches_audit_events(practice: Practice) -> None:
    client = HttpClient()
    headers = bearer(client, register(role="auditor"))
    bundle = client.get(
        "/fhir/r4/AuditEvent?action=E&_count=5", secure=True, headers=headers
    ).json()
    assert bundle["entry"]
    valid(bundle)
