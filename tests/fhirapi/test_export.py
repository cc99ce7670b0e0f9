"""Bulk Data `$export` on careloop's server: kick-off, poll, manifest, files, cancel."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from django.test import Client as HttpClient
from fhir.resources.R4B import get_fhir_model_class

from careloop.fhirapi.export import export_run
from tests.fhirapi.clients import bearer, register
from tests.fhirapi.world import Practice, build_practice

pytestmark = pytest.mark.django_db
ASYNC = {"Prefer": "respond-async"}


def kick_off(client: HttpClient, headers: dict[str, str], url: str) -> str:
    response = client.get(url, secure=True, headers={**headers, **ASYNC})
    assert response.status_code == 202, response.content
    return str(response["Content-Location"]).removeprefix("https://testserver")


def job_of(status_url: str) -> uuid.UUID:
    return uuid.UUID(status_url.rsplit("/", 1)[1])


def test_patient_export_runs_and_serves_valid_ndjson_with_the_token(
    tmp_path: Any, settings: Any
) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path
    practice: Practice = build_practice()
    client = HttpClient()
    headers = bearer(client, register())
    status_url = kick_off(client, headers, "/fhir/r4/Patient/$export?_type=Patient,Observation")
    pending = client.get(status_url, secure=True, headers=headers)
    assert pending.status_code == 202 and pending["Retry-After"]
    assert export_run(job_id=job_of(status_url))
    manifest = client.get(status_url, secure=True, headers=headers).json()
    assert manifest["requiresAccessToken"] is True and manifest["transactionTime"]
    counts = {item["type"]: item["count"] for item in manifest["output"]}
    assert counts == {"Patient": 2, "Observation": 3}
    url = manifest["output"][0]["url"].removeprefix("https://testserver")
    assert client.get(url, secure=True).status_code == 401
    body = b"".join(client.get(url, secure=True, headers=headers).streaming_content)
    lines = [orjson.loads(line) for line in body.splitlines()]
    for line in lines:
        get_fhir_model_class(line["resourceType"]).model_validate(line)
    assert {line["id"] for line in lines} == {str(practice.ada.pk), str(practice.ben.pk)}


def test_group_export_takes_a_location_and_since(tmp_path: Any, settings: Any) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path
    practice = build_practice()
    client = HttpClient()
    headers = bearer(client, register())
    group = f"location-{practice.provider.location_id}"
    practice.ada.home_location_id = practice.provider.location_id
    practice.ada.save(update_fields=["home_location_id"])
    status_url = kick_off(client, headers, f"/fhir/r4/Group/{group}/$export?_type=Patient")
    export_run(job_id=job_of(status_url))
    manifest = client.get(status_url, secure=True, headers=headers).json()
    assert manifest["output"][0]["count"] == 1
    later = kick_off(
        client, headers, f"/fhir/r4/Group/{group}/$export?_type=Patient&_since=2999-01-01T00:00:00Z"
    )
    export_run(job_id=job_of(later))
    assert client.get(later, secure=True, headers=headers).json()["output"][0]["count"] == 0
    unknown = client.get(
        f"/fhir/r4/Group/location-{uuid.uuid4()}/$export", secure=True, headers={**headers, **ASYNC}
    )
    assert unknown.status_code == 404


def test_another_client_cannot_see_an_export_and_delete_cancels(
    tmp_path: Any, settings: Any
) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path
    build_practice()
    client = HttpClient()
    mine, theirs = bearer(client, register()), bearer(client, register())
    status_url = kick_off(client, mine, "/fhir/r4/Patient/$export")
    assert client.get(status_url, secure=True, headers=theirs).status_code == 404
    assert client.delete(status_url, secure=True, headers=mine).status_code == 202
    assert not export_run(job_id=job_of(status_url))
    assert client.get(status_url, secure=True, headers=mine).status_code == 404


def test_export_types_the_role_may_not_read_are_refused(tmp_path: Any, settings: Any) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path
    client = HttpClient()
    headers = bearer(client, register(role="front_desk"))
    response = client.get(
        "/fhir/r4/Patient/$export?_type=Observation", secure=True, headers={**headers, **ASYNC}
    )
    assert response.status_code == 403
    bad = client.get(
        "/fhir/r4/Patient/$export?_since=soon", secure=True, headers={**headers, **ASYNC}
    )
    assert bad.status_code == 400
