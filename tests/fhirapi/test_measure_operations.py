"""Measure read, `$evaluate-measure` and DEQM `$care-gaps` over HTTP with a SMART client:
valid FHIR out, OperationOutcomes with the right status for bad input, scopes and roles
enforced, every access audited."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client as HttpClient
from fhir.resources.R4B import get_fhir_model_class

from careloop.caregaps.evaluate import Period, measure_evaluate
from careloop.security.models import AuditEvent
from tests.caregaps.gaps_practice import AS_OF, import_practice
from tests.fhirapi.clients import bearer, register

pytestmark = pytest.mark.django_db

BASE = "/fhir/r4"
PERIOD = "periodStart=2026-01-01&periodEnd=2026-12-31"
UNKNOWN = uuid.UUID("00000000-0000-4000-8000-000000000001")
GAPS_STATUS = "http://hl7.org/fhir/us/davinci-deqm/CodeSystem/gaps-status"

Http = tuple[HttpClient, dict[str, str]]


@pytest.fixture
def practice(tmp_path: Path) -> dict[str, uuid.UUID]:
    ids = import_practice(tmp_path / "practice")
    # The current run of CMS125 for 2026, statuses as of 2026-12-01: the API reuses it.
    measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF)
    return ids


def _client(role: str = "care_coordinator", scope: str = "system/*.read") -> Http:
    http = HttpClient()
    return http, bearer(http, register(role=role, scopes=(scope,)), scope)


@pytest.fixture
def coordinator() -> Http:
    return _client()


def get(http: Http, url: str) -> Any:
    client, headers = http
    return client.get(url, secure=True, headers=headers)


def post(http: Http, url: str, body: dict[str, Any]) -> Any:
    client, headers = http
    return client.post(
        url, json.dumps(body), content_type="application/fhir+json", secure=True, headers=headers
    )


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def outcome(response: Any, status: int) -> str:
    assert response.status_code == status, response.content
    body = valid(response.json())
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def counts(group: dict[str, Any]) -> dict[str, int]:
    return {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}


def streamed(response: Any) -> dict[str, Any]:
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return valid(json.loads(body))


def gap_codes(bundle: dict[str, Any]) -> list[str]:
    return [
        e["resource"]["modifierExtension"][0]["valueCodeableConcept"]["coding"][0]["code"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DetectedIssue"
    ]


# --- Measure -------------------------------------------------------------------------


def test_measure_read_is_a_valid_measure_with_its_groups(coordinator: Http) -> None:
    measure = valid(get(coordinator, f"{BASE}/Measure/CMS125").json())

    assert measure["id"] == "CMS125" and measure["url"].startswith("https://madie.cms.gov/")
    assert measure["scoring"]["coding"][0]["code"] == "proportion"
    codes = [p["code"]["coding"][0]["code"] for p in measure["group"][0]["population"]]
    assert codes[0] == "initial-population" and "numerator" in codes
    assert len(measure["group"][0]["stratifier"]) == 2
    event = AuditEvent.objects.get(action="fhir.read")
    assert (event.resource_type, event.resource_id, event.actor_kind) == (
        "Measure",
        "CMS125",
        "integration",
    )


def test_an_unknown_measure_is_404(coordinator: Http) -> None:
    assert "no measure" in outcome(get(coordinator, f"{BASE}/Measure/CMS999"), 404)
    url = f"{BASE}/Measure/CMS999/$evaluate-measure?{PERIOD}"
    assert "no measure" in outcome(get(coordinator, url), 404)


def test_the_capability_statement_lists_measure_and_its_operations(coordinator: Http) -> None:
    statement = valid(get(coordinator, f"{BASE}/metadata").json())
    entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Measure")
    assert {op["name"] for op in entry["operation"]} == {"evaluate-measure", "care-gaps"}


# --- $evaluate-measure ---------------------------------------------------------------


def test_evaluate_measure_summary_counts_and_scores(
    coordinator: Http, practice: dict[str, uuid.UUID]
) -> None:
    report = valid(get(coordinator, f"{BASE}/Measure/CMS125/$evaluate-measure?{PERIOD}").json())

    assert report["type"] == "summary"
    assert counts(report["group"][0]) == {
        "initial-population": 4,
        "denominator": 4,
        "denominator-exclusion": 1,
        "numerator": 2,
    }
    assert report["group"][0]["measureScore"]["value"] == round(2 / 3, 4)
    event = AuditEvent.objects.get(action="fhir.read", resource_type="MeasureReport")
    assert event.patient_id is None and "reportType=summary" in event.fields


def test_evaluate_measure_for_a_subject_by_post_parameters(
    coordinator: Http, practice: dict[str, uuid.UUID]
) -> None:
    patient = practice["soon"]
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "periodStart", "valueDate": "2026-01-01"},
            {"name": "periodEnd", "valueDate": "2026-12-31"},
            {"name": "reportType", "valueCode": "subject"},
            {"name": "subject", "valueString": f"Patient/{patient}"},
        ],
    }

    response = post(coordinator, f"{BASE}/Measure/CMS125/$evaluate-measure", body)

    assert response.status_code == 200, response.content
    report = valid(response.json())
    assert report["type"] == "individual"
    assert report["subject"] == {
        "reference": f"Patient/{patient}",
        "identifier": {"system": "urn:careloop:source:ehr", "value": "soon"},
    }
    assert counts(report["group"][0])["numerator"] == 1
    event = AuditEvent.objects.get(action="fhir.read", resource_type="MeasureReport")
    assert event.patient_id == patient and "reportType=individual" in event.fields


def test_a_year_alone_is_a_whole_year(coordinator: Http, practice: dict[str, uuid.UUID]) -> None:
    url = f"{BASE}/Measure/CMS125/$evaluate-measure?periodStart=2026&periodEnd=2026"
    report = valid(get(coordinator, url).json())
    assert report["period"] == {"start": "2026-01-01", "end": "2026-12-31"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("periodEnd=2026-12-31", "periodStart is required"),
        ("periodStart=2026-12-31&periodEnd=2026-01-01", "periodEnd is before periodStart"),
        ("periodStart=2026-02-30&periodEnd=2026-12-31", "periodStart must be a date"),
        (f"{PERIOD}&reportType=subject-list", "subject-list is not supported"),
        (f"{PERIOD}&reportType=whatever", "reportType must be"),
        (f"{PERIOD}&reportType=subject", "needs subject"),
        (f"{PERIOD}&subject=Group/abc", "subject must be Patient/<id>"),
        (f"{PERIOD}&practitioner=Practitioner/1", "does not take the parameter"),
    ],
)
def test_bad_evaluate_measure_parameters_are_400(
    coordinator: Http, practice: dict[str, uuid.UUID], query: str, message: str
) -> None:
    diagnostics = outcome(get(coordinator, f"{BASE}/Measure/CMS125/$evaluate-measure?{query}"), 400)
    assert message in diagnostics


def test_an_unknown_subject_is_404(coordinator: Http, practice: dict[str, uuid.UUID]) -> None:
    url = f"{BASE}/Measure/CMS125/$evaluate-measure?{PERIOD}&subject=Patient/{uuid.uuid4()}"
    outcome(get(coordinator, url), 404)


def test_an_analyst_gets_the_summary_but_no_patients_report(
    practice: dict[str, uuid.UUID],
) -> None:
    analyst = _client("analyst")
    summary = get(analyst, f"{BASE}/Measure/CMS125/$evaluate-measure?{PERIOD}")
    assert summary.status_code == 200

    url = f"{BASE}/Measure/CMS125/$evaluate-measure?{PERIOD}&subject=Patient/{practice['soon']}"
    outcome(get(analyst, url), 403)
    denied = AuditEvent.objects.get(action="access.denied")
    assert (denied.resource_type, denied.patient_id) == ("clinical", practice["soon"])
    assert not AuditEvent.objects.filter(action="fhir.read", patient_id=practice["soon"]).exists()


def test_a_token_without_the_measure_scopes_is_refused(practice: dict[str, uuid.UUID]) -> None:
    patients_only = _client(scope="system/Patient.read")

    for url in (
        f"{BASE}/Measure/CMS125",
        f"{BASE}/Measure/CMS125/$evaluate-measure?{PERIOD}",
        f"{BASE}/Measure/$care-gaps?{PERIOD}&status=open-gap",
    ):
        assert "scopes do not cover" in outcome(get(patients_only, url), 403)
    assert AuditEvent.objects.filter(action="access.denied").count() == 3


def test_no_token_is_401() -> None:
    response = HttpClient().get(f"{BASE}/Measure/CMS125", secure=True)
    outcome(response, 401)


# --- $care-gaps ----------------------------------------------------------------------


def test_care_gaps_for_a_subject_is_a_document_bundle_per_patient(
    coordinator: Http, practice: dict[str, uuid.UUID]
) -> None:
    patient = practice["never"]
    url = (
        f"{BASE}/Measure/$care-gaps?{PERIOD}&subject=Patient/{patient}&measureId=CMS125"
        "&status=open-gap&status=closed-gap,prospective-gap"
    )

    parameters = streamed(get(coordinator, url))

    assert [p["name"] for p in parameters["parameter"]] == ["return"]
    bundle = parameters["parameter"][0]["resource"]
    assert bundle["type"] == "document" and bundle["identifier"]["system"] == "urn:ietf:rfc:3986"
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["Composition", "MeasureReport", "DetectedIssue"]
    composition, report, issue = (e["resource"] for e in bundle["entry"])
    assert composition["type"]["coding"][0]["code"] == "96315-7"
    assert composition["subject"] == {"reference": f"Patient/{patient}"}
    section = composition["section"][0]
    assert section["focus"]["reference"] == f"urn:uuid:{report['id']}"
    assert section["entry"] == [{"reference": f"urn:uuid:{issue['id']}"}]
    assert report["type"] == "individual" and report["subject"]["identifier"]["value"] == "never"
    assert gap_codes(bundle) == ["open-gap"]
    assert issue["code"]["coding"][0]["code"] == "CAREGAP"
    assert issue["modifierExtension"][0]["valueCodeableConcept"]["coding"][0]["system"] == (
        GAPS_STATUS
    )
    assert issue["evidence"][0]["detail"][0]["reference"] == f"urn:uuid:{report['id']}"
    event = AuditEvent.objects.get(action="fhir.read", resource_type="Bundle")
    assert event.patient_id == patient


@pytest.mark.parametrize(
    ("who", "status", "expected"),
    [
        ("met", "closed-gap", ["closed-gap"]),
        ("soon", "prospective-gap", ["prospective-gap"]),
        ("soon", "open-gap", []),
        ("hospice", "open-gap,closed-gap,prospective-gap", []),
    ],
)
def test_rolling_statuses_map_to_deqm_gap_statuses(
    coordinator: Http, practice: dict[str, uuid.UUID], who: str, status: str, expected: list[str]
) -> None:
    url = (
        f"{BASE}/Measure/$care-gaps?{PERIOD}&subject=Patient/{practice[who]}"
        f"&measureUrl=https://madie.cms.gov/Measure/CMS125FHIRBreastCancerScreening&status={status}"
    )
    bundle = streamed(get(coordinator, url))["parameter"][0]["resource"]
    assert gap_codes(bundle) == expected
    if not expected:  # a named subject gets its bundle, with an empty report
        assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Composition"]


def test_care_gaps_without_a_subject_streams_every_patient_with_a_gap(
    coordinator: Http, practice: dict[str, uuid.UUID]
) -> None:
    url = f"{BASE}/Measure/$care-gaps?{PERIOD}&measureId=CMS125&status=open-gap,prospective-gap"

    response = get(coordinator, url)

    assert response.streaming
    parameters = streamed(response)
    subjects = {
        p["resource"]["entry"][0]["resource"]["subject"]["reference"]: gap_codes(p["resource"])
        for p in parameters["parameter"]
    }
    assert subjects == {
        f"Patient/{practice['never']}": ["open-gap"],
        f"Patient/{practice['soon']}": ["prospective-gap"],
    }
    event = AuditEvent.objects.get(action="fhir.export")
    assert event.patient_id is None and event.actor_kind == "integration"


def test_care_gaps_over_every_measure_is_valid_and_may_be_empty(
    coordinator: Http, practice: dict[str, uuid.UUID]
) -> None:
    parameters = streamed(get(coordinator, f"{BASE}/Measure/$care-gaps?{PERIOD}&status=open-gap"))
    for parameter in parameters.get("parameter", []):
        assert parameter["resource"]["entry"][0]["resource"]["resourceType"] == "Composition"


def test_care_gaps_by_post_parameters(coordinator: Http, practice: dict[str, uuid.UUID]) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "periodStart", "valueDate": "2026-01-01"},
            {"name": "periodEnd", "valueDate": "2026-12-31"},
            {"name": "subject", "valueString": f"Patient/{practice['never']}"},
            {"name": "measureId", "valueString": "CMS125"},
            {"name": "status", "valueCode": "open-gap"},
        ],
    }
    parameters = streamed(post(coordinator, f"{BASE}/Measure/$care-gaps", body))
    assert gap_codes(parameters["parameter"][0]["resource"]) == ["open-gap"]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        (PERIOD, 400, "status is required"),
        (f"{PERIOD}&status=half-open", 400, "status must be"),
        ("status=open-gap&periodEnd=2026-12-31", 400, "periodStart is required"),
        (f"{PERIOD}&status=open-gap&practitioner=Practitioner/1", 400, "does not take"),
        (f"{PERIOD}&status=open-gap&subject=Patient/nope", 400, "subject must be Patient/<id>"),
        (f"{PERIOD}&status=open-gap&measureId=CMS999", 404, "no measure"),
        (f"{PERIOD}&status=open-gap&measureUrl=http://example.org/M", 404, "no measure"),
        (f"{PERIOD}&status=open-gap&subject=Patient/{UNKNOWN}", 404, "no such resource"),
    ],
)
def test_bad_care_gaps_parameters(
    coordinator: Http, practice: dict[str, uuid.UUID], query: str, status: int, message: str
) -> None:
    assert message in outcome(get(coordinator, f"{BASE}/Measure/$care-gaps?{query}"), status)


def test_care_gaps_is_clinical_so_an_analyst_is_refused(practice: dict[str, uuid.UUID]) -> None:
    analyst = _client("analyst")
    url = f"{BASE}/Measure/$care-gaps?{PERIOD}&status=open-gap"
    assert "may not read" in outcome(get(analyst, url), 403)
    assert AuditEvent.objects.get(action="access.denied").resource_type == "clinical"


def test_every_registered_measure_is_a_valid_measure_resource() -> None:
    from careloop.caregaps.measure import measures
    from careloop.fhirapi.measure import measure_resource

    for measure in measures().values():
        resource = valid(measure_resource(measure))
        assert resource["id"] == measure.id and resource["url"] == measure.url
