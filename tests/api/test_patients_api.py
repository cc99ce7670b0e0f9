"""The JSON API under /api/v1/, through HTTP with bearer tokens: who may read what, paging,
audit, the OpenAPI document, and problem documents for every kind of bad request."""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from openapi_spec_validator import validate

from careloop.core import clock
from careloop.patients.models import Patient, Sex
from careloop.security.models import AuditEvent, Role, User
from careloop.security.permissions import allowed, is_staff_role
from careloop.security.tokens import token_create, token_revoke
from tests.patients.builders import (
    add_contact,
    add_coverage,
    add_mrn,
    make_location,
    make_patient,
    make_provider,
)

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
SEARCH = "/api/v1/patients/search"


@dataclass
class Clinic:
    ana: Patient  # Dr Chen's patient: the clinician persona's care team
    ben: Patient  # another provider's patient, at another location
    cleo: Patient


@pytest.fixture
def clinic() -> Clinic:
    main, lakeside = make_location("Main Street Clinic"), make_location("Lakeside Clinic")
    chen = make_provider(main, "Dr. Maya Chen")
    okafor = make_provider(lakeside, "Dr. Ike Okafor")
    ana = make_patient(
        "Ana",
        "García",
        datetime.date(1962, 3, 14),
        sex=Sex.FEMALE,
        preferred_name="Annie",
        address_line="12 Elm Street",
        city="Springfield",
        postal_code="62704",
        state="IL",
        primary_provider=chen,
    )
    add_contact(ana, "phone", "+1 (217) 555-0142", can_sms=True)
    add_mrn(ana, "RB-004521")
    add_coverage(ana, payer_category="medicare", payer_name="Medicare Part B", member_id="1EG4TE5")
    ben = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6), primary_provider=okafor)
    cleo = make_patient("Cleo", "Castro", datetime.date(1985, 8, 9), home_location=lakeside)
    User.objects.create(username="dr-chen", role=Role.CLINICIAN, provider=chen)
    return Clinic(ana=ana, ben=ben, cleo=cleo)


def token_for(role: str, username: str | None = None) -> str:
    name = username or f"api-{role}"
    user = User.objects.filter(username=name).first() or User.objects.create(
        username=name, role=role
    )
    return token_create(user=user).raw


def call(
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    *,
    raw: str | None = None,
    client: Client | None = None,
) -> Any:
    client = client or Client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {"secure": True, "headers": headers}
    if raw is not None:
        kwargs.update(data=raw, content_type="application/json")
    elif body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return getattr(client, method.lower())(path, **kwargs)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    document = response.json()
    assert document["status"] == status
    assert document["title"] and document["detail"]
    return dict(document)


# --- who am I ------------------------------------------------------------------------


def test_me_tells_the_caller_their_role_and_what_it_may_do() -> None:
    response = call("GET", "/api/v1/me", token_for(Role.FRONT_DESK))
    assert response.status_code == 200
    me = response.json()
    assert me["username"] == "api-front_desk"
    assert me["role"] == "front_desk"
    assert me["permissions"]["demographics"] == ["read", "write"]
    assert "clinical" not in me["permissions"]


# --- search --------------------------------------------------------------------------


def test_search_finds_a_patient_by_name_and_audits_each_patient_sent(clinic: Clinic) -> None:
    response = call("POST", SEARCH, token_for(Role.FRONT_DESK), {"query": "ana garcia"})
    assert response.status_code == 200
    [found] = response.json()["items"]
    assert found["id"] == str(clinic.ana.id)
    assert (found["given_name"], found["family_name"]) == ("Ana", "García")
    assert found["birth_date"] == "1962-03-14"
    assert response.json()["next_cursor"] is None

    reads = AuditEvent.objects.filter(action="api.read", patient_id=clinic.ana.id)
    assert reads.count() == 1
    assert "family_name" in reads.get().fields
    # The search itself is recorded too, without what was searched for.
    assert AuditEvent.objects.filter(action="api.read", resource_id="search").count() == 1


def test_search_by_phone_and_mrn_goes_through_the_blind_indexes(clinic: Clinic) -> None:
    token = token_for(Role.FRONT_DESK)
    for query in ("217.555.0142", "RB-004521", "03/14/1962"):
        items = call("POST", SEARCH, token, {"query": query}).json()["items"]
        assert [item["id"] for item in items] == [str(clinic.ana.id)], query


def test_search_pages_by_cursor_with_no_repeats_and_no_gaps() -> None:
    patients = [make_patient(f"Given{n}", "Page", datetime.date(1980, 1, 1 + n)) for n in range(7)]
    token = token_for(Role.FRONT_DESK)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        body: dict[str, Any] = {"limit": 3}
        if cursor:
            body["cursor"] = cursor
        page = call("POST", SEARCH, token, body).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A patient added between pages lands at the front, never inside the walk.
        make_patient("Late", "Arrival", datetime.date(1990, 1, 1))
    assert pages == 3
    newest_first = [str(p.id) for p in sorted(patients, key=lambda p: p.created_at, reverse=True)]
    assert seen == newest_first


def test_clinician_search_finds_only_her_care_teams_patients(clinic: Clinic) -> None:
    items = call("POST", SEARCH, token_for(Role.CLINICIAN, "dr-chen"), {"query": ""}).json()
    assert [item["id"] for item in items["items"]] == [str(clinic.ana.id)]


# --- one patient ---------------------------------------------------------------------


def test_front_desk_reads_demographics_identifiers_contacts_and_coverage(clinic: Clinic) -> None:
    response = call("GET", f"/api/v1/patients/{clinic.ana.id}", token_for(Role.FRONT_DESK))
    assert response.status_code == 200
    patient = response.json()
    assert patient["preferred_name"] == "Annie"
    assert patient["address"] == {
        "line": "12 Elm Street",
        "city": "Springfield",
        "postal_code": "62704",
        "state": "IL",
    }
    assert patient["identifiers"][0]["value"] == "RB-004521"
    assert patient["contact_points"][0]["value"] == "+1 (217) 555-0142"
    assert patient["coverages"][0]["member_id"] == "1EG4TE5"

    event = AuditEvent.objects.get(action="api.read", patient_id=clinic.ana.id)
    assert event.resource_id == str(clinic.ana.id)
    assert {"identifiers", "contact_points", "coverages"} <= set(event.fields)
    assert event.actor_label == "api-front_desk"


def test_clinician_gets_contacts_but_not_coverage_which_her_role_may_not_read(
    clinic: Clinic,
) -> None:
    response = call(
        "GET", f"/api/v1/patients/{clinic.ana.id}", token_for(Role.CLINICIAN, "dr-chen")
    )
    assert response.status_code == 200
    assert response.json()["coverages"] is None
    assert response.json()["contact_points"]
    event = AuditEvent.objects.get(action="api.read", patient_id=clinic.ana.id)
    assert "coverages" not in event.fields


def test_a_patient_outside_the_clinicians_scope_is_a_404_like_a_missing_one(
    clinic: Clinic,
) -> None:
    token = token_for(Role.CLINICIAN, "dr-chen")
    outside = call("GET", f"/api/v1/patients/{clinic.ben.id}", token)
    missing = call("GET", f"/api/v1/patients/{uuid.uuid4()}", token)
    assert assert_problem(outside, 404) == assert_problem(missing, 404)


# --- who may call what ---------------------------------------------------------------


def api_routes() -> list[tuple[str, Any]]:
    """(URL name, callback) of every route under the `api` namespace."""

    def walk(patterns: list[Any], namespace: str) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = entry.namespace or namespace
                found += walk(entry.url_patterns, inner)
            elif isinstance(entry, URLPattern) and namespace == "api":
                found.append((entry.name or "", entry.callback))
        return found

    return walk(get_resolver().url_patterns, "")


def test_every_api_route_declares_its_permission_or_answers_404_to_everyone() -> None:
    routes = api_routes()
    assert {"me", "patients_search", "patient_read", "openapi-json"} <= {n for n, _ in routes}
    for name, callback in routes:
        declared = getattr(callback, "careloop_api_permission", None)
        public = getattr(callback, "careloop_api_public", False)
        assert declared or public, f"API route {name} declares no permission"


ENDPOINTS = [
    ("GET", "/api/v1/me", None, "me"),
    ("POST", SEARCH, {"query": ""}, "patients_search"),
    ("GET", "/api/v1/patients/{ana}", None, "patient_read"),
]


@pytest.mark.parametrize("role", [role for role in Role if role != Role.PATIENT])
def test_each_role_gets_exactly_what_the_permission_table_allows(
    clinic: Clinic, role: Role
) -> None:
    declarations = {name: getattr(cb, "careloop_api_permission", None) for name, cb in api_routes()}
    token = token_for(role, "dr-chen" if role == Role.CLINICIAN else None)
    for method, path, body, name in ENDPOINTS:
        response = call(method, path.format(ana=clinic.ana.id), token, body)
        declared = declarations[name]
        if declared == "any_staff":
            expected = is_staff_role(role)
        else:
            op, resource = declared
            expected = allowed(role, op, resource)
        if expected:
            assert response.status_code == 200, (role, name, response.content[:200])
        else:
            assert_problem(response, 403)
            assert AuditEvent.objects.filter(action="access.denied").exists()


# --- refused tokens ------------------------------------------------------------------


def test_requests_without_a_usable_token_are_401_problems(clinic: Clinic) -> None:
    dana = User.objects.create(username="dana", role=Role.FRONT_DESK)
    expired = token_create(user=dana, days=1)
    revoked = token_create(user=dana)
    token_revoke(token_id=revoked.token.id)
    with clock.frozen(expired.token.expires_at + datetime.timedelta(minutes=1)):
        response = call("GET", "/api/v1/me", expired.raw)
        assert_problem(response, 401)
    for presented in (None, revoked.raw, "clp_nothing", "not-even-close"):
        response = call("GET", "/api/v1/me", presented)
        assert_problem(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
    basic = Client().get("/api/v1/me", secure=True, headers={"Authorization": "Basic ZGFuYTp4"})
    assert_problem(basic, 401)
    assert AuditEvent.objects.filter(action="token.denied").count() == 4


def test_a_disabled_users_token_stops_working_at_once() -> None:
    dana = User.objects.create(username="dana", role=Role.FRONT_DESK)
    issued = token_create(user=dana)
    assert call("GET", "/api/v1/me", issued.raw).status_code == 200
    dana.is_active = False
    dana.save(update_fields=["is_active"])
    assert_problem(call("GET", "/api/v1/me", issued.raw), 401)


def test_a_signed_in_browser_session_does_not_authenticate_the_api(clinic: Clinic) -> None:
    # Session cookies are ignored: a page elsewhere cannot ride a signed-in browser (CSRF).
    dana = User.objects.create(username="dana", role=Role.FRONT_DESK)
    browser = Client(enforce_csrf_checks=True)
    device = TOTPDevice.objects.create(user=dana, name="phone", confirmed=True)
    browser.force_login(dana)
    session = browser.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    assert_problem(call("POST", SEARCH, None, {"query": ""}, client=browser), 401)
    # With a token, no CSRF token is needed.
    token = token_create(user=dana).raw
    assert call("POST", SEARCH, token, {"query": ""}, client=browser).status_code == 200


def test_the_rate_limit_answers_429_with_retry_after(settings: Any) -> None:
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "token.ip": (3, 60)}
    token = token_for(Role.FRONT_DESK)
    statuses = [call("GET", "/api/v1/me", token).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = call("GET", "/api/v1/me", token)
    assert_problem(refused, 429)
    assert refused["Retry-After"] == "60"


# --- bad input -----------------------------------------------------------------------

CANARY = "Zebulon Quartermaine"

BAD_REQUESTS = [
    ("POST", SEARCH, "{not json", 400),
    ("POST", SEARCH, "", 422),  # no body at all
    ("POST", SEARCH, "[]", 422),
    ("POST", SEARCH, '"just a string"', 422),
    ("POST", SEARCH, json.dumps({"query": 12}), 422),
    ("POST", SEARCH, json.dumps({"query": ["a"]}), 422),
    ("POST", SEARCH, json.dumps({"query": "", "limit": "10"}), 422),
    ("POST", SEARCH, json.dumps({"query": "", "limit": 0}), 422),
    ("POST", SEARCH, json.dumps({"query": "", "limit": 101}), 422),
    ("POST", SEARCH, json.dumps({"query": "", "limit": True}), 422),
    ("POST", SEARCH, json.dumps({"query": "x" * 201}), 422),
    ("POST", SEARCH, json.dumps({"query": "", "surname": CANARY}), 422),
    ("POST", SEARCH, json.dumps({"query": CANARY, "limit": CANARY}), 422),
    ("POST", SEARCH, json.dumps({"query": "", "cursor": "not-a-cursor!"}), 400),
    ("POST", SEARCH, json.dumps({"query": "", "cursor": "bm90fGE"}), 400),
    ("POST", SEARCH, json.dumps({"query": "", "cursor": 5}), 422),
    ("GET", SEARCH, None, 405),
    ("GET", "/api/v1/patients/not-a-uuid", None, 422),
    ("GET", "/api/v1/patients/12345", None, 422),
    ("GET", f"/api/v1/patients/{uuid.UUID(int=0)}", None, 404),
    ("DELETE", "/api/v1/me", None, 405),
    ("GET", "/api/v1/", None, 404),
    ("GET", "/api/v1/no-such-thing", None, 404),
    ("GET", "/api/v2/me", None, 404),
]


@pytest.mark.parametrize(("method", "path", "raw", "status"), BAD_REQUESTS)
def test_bad_requests_get_a_problem_document_never_html_or_a_500(
    method: str, path: str, raw: str | None, status: int
) -> None:
    response = call(method, path, token_for(Role.FRONT_DESK), raw=raw)
    document = assert_problem(response, status)
    assert CANARY not in response.content.decode()
    if status == 422:
        assert document["errors"], "a 422 says where the errors are"


# --- the OpenAPI document ------------------------------------------------------------


def test_openapi_document_needs_a_token_is_valid_and_lists_every_endpoint() -> None:
    assert_problem(Client().get("/api/v1/openapi.json", secure=True), 401)
    response = call("GET", "/api/v1/openapi.json", token_for(Role.ANALYST))
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    patient = "/api/v1/patients/{patient_id}"
    assert operations == {
        ("GET", "/api/v1/me"),
        ("POST", "/api/v1/patients/search"),
        ("POST", "/api/v1/patients"),
        ("GET", patient),
        ("GET", f"{patient}/contact-points"),
        ("POST", f"{patient}/contact-points"),
        ("GET", f"{patient}/contact-points/{{contact_id}}"),
        ("PATCH", f"{patient}/contact-points/{{contact_id}}"),
        ("DELETE", f"{patient}/contact-points/{{contact_id}}"),
        ("GET", f"{patient}/coverages"),
        ("POST", f"{patient}/coverages"),
        ("GET", f"{patient}/coverages/{{coverage_id}}"),
        ("PATCH", f"{patient}/coverages/{{coverage_id}}"),
        ("GET", f"{patient}/notes"),
        ("POST", f"{patient}/notes"),
        ("GET", f"{patient}/notes/{{note_id}}"),
        ("PATCH", f"{patient}/notes/{{note_id}}"),
        ("GET", f"{patient}/consents"),
        ("POST", f"{patient}/consents"),
        ("GET", f"{patient}/preferences"),
        ("PUT", f"{patient}/preferences"),
    }
    # Updates document their concurrency answers; registration its duplicate answer.
    change = document["paths"][f"{patient}/notes/{{note_id}}"]["patch"]["responses"]
    assert {"412", "428"} <= {str(status) for status in change}
    register = document["paths"]["/api/v1/patients"]["post"]["responses"]
    assert "409" in {str(status) for status in register}
    # Every declared route is documented, under its URL name as the operationId.
    declared = {name for name, cb in api_routes() if hasattr(cb, "careloop_api_permission")}
    operation_ids = {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
    }
    assert operation_ids == declared - {"openapi-json"}
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["security"], "every operation needs a token"
            assert operation["responses"]["401"]["content"][PROBLEM]
    schemes = document["components"]["securitySchemes"]
    assert any(scheme.get("scheme") == "bearer" for scheme in schemes.values())


def test_api_responses_carry_the_security_headers_and_are_never_cached() -> None:
    response = call("GET", "/api/v1/me", token_for(Role.FRONT_DESK))
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_a_half_signed_in_browser_session_does_not_block_a_valid_token(clinic: Clinic) -> None:
    # Password given, second factor not yet: the staff pages send this session back to the
    # code prompt, but the API looks only at the bearer token.
    dana = User.objects.create(username="dana", role=Role.FRONT_DESK)
    browser = Client()
    browser.force_login(dana)
    token = token_create(user=dana).raw
    assert call("GET", "/api/v1/me", token, client=browser).status_code == 200
    assert_problem(call("GET", "/api/v1/me", None, client=browser), 401)
