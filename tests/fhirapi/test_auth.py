"""The token endpoint and bearer authentication: SMART Backend Services, checked twice."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client as HttpClient

from careloop.core import clock
from careloop.fhirapi.clients import client_disable
from careloop.security.models import AuditEvent
from tests.fhirapi.clients import bearer, register, token_request

pytestmark = pytest.mark.django_db


def test_a_signed_assertion_gets_a_five_minute_token_with_the_granted_scopes() -> None:
    registered = register(scopes=("system/Patient.read",))
    response = token_request(HttpClient(), registered, "system/Patient.read system/Task.read")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/Patient.read"
    assert AuditEvent.objects.filter(
        action="fhir.token", actor_kind="integration", actor_id=registered.client.client_id
    ).exists()


@pytest.mark.parametrize(
    "change",
    [
        {"aud": "https://elsewhere.example/token"},
        {"exp": 0},
        {"sub": "someone-else"},
    ],
    ids=["wrong-audience", "expired", "sub-is-not-the-client"],
)
def test_a_bad_assertion_is_refused_and_audited(change: dict[str, object]) -> None:
    registered = register()
    response = token_request(HttpClient(), registered, assertion=registered.assertion(**change))
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"
    assert AuditEvent.objects.filter(action="fhir.token", outcome="denied").exists()


def test_an_assertion_living_longer_than_five_minutes_is_refused() -> None:
    registered = register()
    far = int((clock.now() + datetime.timedelta(minutes=30)).timestamp())
    response = token_request(HttpClient(), registered, assertion=registered.assertion(exp=far))
    assert response.json()["error"] == "invalid_client"


def test_a_replayed_assertion_is_refused() -> None:
    registered = register()
    assertion = registered.assertion()
    http = HttpClient()
    assert token_request(http, registered, assertion=assertion).status_code == 200
    again = token_request(http, registered, assertion=assertion)
    assert again.status_code == 400 and "jti" in again.json()["error_description"]


def test_an_assertion_signed_by_another_key_is_refused() -> None:
    registered, stranger = register(), register()
    forged = stranger.assertion(iss=registered.client.client_id, sub=registered.client.client_id)
    assert token_request(HttpClient(), registered, assertion=forged).status_code in (400, 401)


def test_scopes_the_client_was_not_given_are_refused() -> None:
    registered = register(scopes=("system/Patient.read",))
    response = token_request(HttpClient(), registered, "system/Observation.read")
    assert response.json()["error"] == "invalid_scope"


def test_no_token_is_401_with_an_operation_outcome() -> None:
    response = HttpClient().get("/fhir/r4/Patient", secure=True)
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_the_role_bounds_what_scopes_allow() -> None:
    # An analyst sees figures and de-identified rows only: system/*.read cannot change that.
    registered = register(role="analyst")
    http = HttpClient()
    response = http.get("/fhir/r4/Patient", secure=True, headers=bearer(http, registered))
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    denied = AuditEvent.objects.get(action="access.denied")
    assert (denied.actor_kind, denied.actor_id) == ("integration", registered.client.client_id)


def test_a_scope_narrower_than_the_role_is_enforced() -> None:
    registered = register(scopes=("system/Appointment.read",))
    http = HttpClient()
    headers = bearer(http, registered, "system/Appointment.read")
    assert http.get("/fhir/r4/Appointment", secure=True, headers=headers).status_code == 200
    assert http.get("/fhir/r4/Patient", secure=True, headers=headers).status_code == 403


def test_disabling_a_client_ends_its_tokens_at_once() -> None:
    registered = register()
    http = HttpClient()
    headers = bearer(http, registered)
    client_disable(name=registered.client.name)
    assert http.get("/fhir/r4/Patient", secure=True, headers=headers).status_code == 401
    assert token_request(http, registered).status_code == 401


def test_a_scoped_role_cannot_be_given_to_a_client() -> None:
    from careloop.fhirapi.clients import ClientError

    with pytest.raises(ClientError):
        register(role="clinician")
