"""The patient's resources under /api/v1/: contact points, coverages, notes, consents,
preferences and registration, through HTTP with bearer tokens: who may do what, paging
and filters, audit, and `If-Match` (428 without it, 412 when stale, nothing written)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.test import Client

from careloop.consent.models import ConsentRecord
from careloop.patients.models import ContactPoint, Coverage, Patient, PatientNote
from careloop.security.models import AuditEvent, Role, User
from careloop.security.tokens import token_create
from tests.patients.builders import (
    add_contact,
    add_coverage,
    make_location,
    make_patient,
    make_provider,
)

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture
def ana() -> Patient:
    chen = make_provider(make_location("Main Street Clinic"), "Dr. Maya Chen")
    patient = make_patient("Ana", "García", datetime.date(1962, 3, 14), primary_provider=chen)
    User.objects.create(username="dr-chen", role=Role.CLINICIAN, provider=chen)
    return patient


def token_for(role: str, username: str | None = None) -> str:
    name = username or f"api-{role}"
    user = User.objects.filter(username=name).first() or User.objects.create(
        username=name, role=role
    )
    return token_create(user=user).raw


def call(method: str, path: str, token: str, body: Any = None, **headers: str) -> Any:
    kwargs: dict[str, Any] = {
        "secure": True,
        "headers": {"Authorization": f"Bearer {token}", **headers},
    }
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return getattr(Client(), method.lower())(path, **kwargs)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:400]
    assert response["Content-Type"] == PROBLEM
    document: dict[str, Any] = response.json()
    assert document["status"] == status and document["title"] and document["detail"]
    return document


def url(patient: Patient, rest: str = "") -> str:
    return f"/api/v1/patients/{patient.id}{rest}"


# --- contact points -----------------------------------------------------------------


def test_front_desk_adds_reads_changes_and_removes_a_contact_point(ana: Patient) -> None:
    token = token_for(Role.FRONT_DESK)
    added = call(
        "POST",
        url(ana, "/contact-points"),
        token,
        {"system": "phone", "value": "(217) 555-0142", "can_sms": True, "can_voice": True},
    )
    assert added.status_code == 201, added.content
    contact = added.json()
    assert contact["value"] == "+12175550142"
    assert added["ETag"]

    path = url(ana, f"/contact-points/{contact['id']}")
    read = call("GET", path, token)
    assert read.status_code == 200 and read.json() == contact
    tag = read["ETag"]
    assert tag == added["ETag"]

    changed = call("PATCH", path, token, {"use": "home", "rank": 2}, **{"If-Match": tag})
    assert changed.status_code == 200, changed.content
    assert (changed.json()["use"], changed.json()["rank"]) == ("home", 2)
    assert changed.json()["value"] == "+12175550142"  # what was left out is kept
    assert changed["ETag"] != tag

    removed = call("DELETE", path, token, **{"If-Match": changed["ETag"]})
    assert removed.status_code == 204
    assert not ContactPoint.objects.filter(pk=contact["id"]).exists()
    assert AuditEvent.objects.filter(action="patient.update", patient_id=ana.id).count() == 3


def test_a_change_without_if_match_is_428_and_a_stale_one_412_and_nothing_changes(
    ana: Patient,
) -> None:
    token = token_for(Role.FRONT_DESK)
    contact = add_contact(ana, "phone", "+12175550142", can_sms=True)
    path = url(ana, f"/contact-points/{contact.id}")
    stale = call("GET", path, token)["ETag"]
    # Someone else changes it meanwhile.
    assert call("PATCH", path, token, {"rank": 3}, **{"If-Match": stale}).status_code == 200

    assert_problem(call("PATCH", path, token, {"rank": 5}), 428)
    assert_problem(call("PATCH", path, token, {"rank": 5}, **{"If-Match": stale}), 412)
    assert_problem(call("DELETE", path, token, **{"If-Match": stale}), 412)
    contact.refresh_from_db()
    assert contact.rank == 3
    # A weak tag never matches a strong comparison; `*` matches what exists.
    current = call("GET", path, token)["ETag"]
    weak = call("PATCH", path, token, {"rank": 4}, **{"If-Match": f"W/{current}"})
    assert_problem(weak, 412)
    assert call("PATCH", path, token, {"rank": 4}, **{"If-Match": "*"}).status_code == 200


def test_contact_points_are_paged_by_cursor_and_filtered_by_system(ana: Patient) -> None:
    for n in range(5):
        add_contact(ana, "phone", f"+1217555010{n}", rank=n + 1, can_sms=True)
    add_contact(ana, "email", "ana@example.org", can_email=True)
    token = token_for(Role.CARE_COORDINATOR)
    seen: list[str] = []
    cursor = None
    while True:
        query = "?system=phone&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = call("GET", url(ana, "/contact-points") + query, token).json()
        seen += [item["value"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"+1217555010{n}" for n in range(5)]
    emails = call("GET", url(ana, "/contact-points?system=email"), token).json()["items"]
    assert [e["value"] for e in emails] == ["ana@example.org"]
    read = AuditEvent.objects.filter(action="api.read", patient_id=ana.id).last()
    assert read is not None and "value" in read.fields


def test_contact_point_bad_input_is_a_problem_never_a_500(ana: Patient) -> None:
    token = token_for(Role.FRONT_DESK)
    path = url(ana, "/contact-points")
    invalid = assert_problem(call("POST", path, token, {"system": "phone", "value": "12"}), 422)
    assert "12" not in json.dumps(invalid)  # the value sent is never echoed
    assert_problem(
        call("POST", path, token, {"system": "email", "value": "a@b.org", "can_sms": True}), 422
    )
    assert_problem(call("POST", path, token, {"system": "fax", "value": "x"}), 422)
    assert_problem(
        call("POST", path, token, {"system": "phone", "value": "+12175550100", "x": 1}), 422
    )
    assert_problem(call("GET", path + "?limit=0", token), 422)
    assert_problem(call("GET", path + "?limit=101", token), 422)
    assert_problem(call("GET", path + "?cursor=not-ours", token), 400)
    assert_problem(call("GET", path + "?system=fax", token), 422)
    assert_problem(call("GET", url(ana, "/contact-points/not-a-uuid"), token), 422)


def test_roles_are_held_to_the_table_for_contact_points(ana: Patient) -> None:
    contact = add_contact(ana, "phone", "+12175550142", can_sms=True)
    path = url(ana, f"/contact-points/{contact.id}")
    clinician = token_for(Role.CLINICIAN, "dr-chen")
    tag = call("GET", path, clinician)["ETag"]  # a clinician may read...
    assert_problem(call("PATCH", path, clinician, {"rank": 2}, **{"If-Match": tag}), 403)
    assert_problem(
        call(
            "POST", url(ana, "/contact-points"), clinician, {"system": "email", "value": "a@b.org"}
        ),
        403,
    )
    assert_problem(call("GET", path, token_for(Role.ANALYST)), 403)
    # A clinician outside the care team does not see the patient at all.
    assert_problem(call("GET", path, token_for(Role.CLINICIAN, "dr-other")), 404)
    assert AuditEvent.objects.filter(action="access.denied").exists()


# --- coverages ----------------------------------------------------------------------


def test_coverages_are_added_filtered_and_changed_with_if_match(ana: Patient) -> None:
    token = token_for(Role.FRONT_DESK)
    add_coverage(ana, payer_category="medicare", payer_name="Medicare Part B", status="cancelled")
    added = call(
        "POST",
        url(ana, "/coverages"),
        token,
        {
            "payer_category": "commercial",
            "payer_name": "Acme Health",
            "member_id": "XK-1",
            "period_start": "2026-01-01",
            "rank": 2,
        },
    )
    assert added.status_code == 201, added.content
    active = call("GET", url(ana, "/coverages?status=active"), token).json()["items"]
    assert [c["payer_name"] for c in active] == ["Acme Health"]

    path = url(ana, f"/coverages/{added.json()['id']}")
    tag = call("GET", path, token)["ETag"]
    assert_problem(call("PATCH", path, token, {"plan_name": "Gold"}), 428)
    bad_period = call("PATCH", path, token, {"period_end": "2025-01-01"}, **{"If-Match": tag})
    assert_problem(bad_period, 422)
    changed = call(
        "PATCH", path, token, {"plan_name": "Gold", "member_id": None}, **{"If-Match": tag}
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["plan_name"], changed.json()["member_id"]) == ("Gold", None)
    assert_problem(call("PATCH", path, token, {"plan_name": "Silver"}, **{"If-Match": tag}), 412)
    assert Coverage.objects.get(pk=added.json()["id"]).plan_name == "Gold"


def test_a_clinician_may_not_read_coverage(ana: Patient) -> None:
    assert_problem(call("GET", url(ana, "/coverages"), token_for(Role.CLINICIAN, "dr-chen")), 403)


# --- notes --------------------------------------------------------------------------


def test_notes_are_listed_newest_first_and_only_their_author_edits_them(ana: Patient) -> None:
    author = token_for(Role.CARE_COORDINATOR, "coord-a")
    colleague = token_for(Role.CARE_COORDINATOR, "coord-b")
    first = call("POST", url(ana, "/notes"), author, {"body": "Prefers mornings."}).json()
    second = call("POST", url(ana, "/notes"), colleague, {"body": "Daughter helps."}).json()
    listed = call("GET", url(ana, "/notes"), author).json()
    assert [n["id"] for n in listed["items"]] == [second["id"], first["id"]]
    mine = call("GET", url(ana, "/notes?mine=true&limit=1"), author).json()
    assert [n["id"] for n in mine["items"]] == [first["id"]] and mine["next_cursor"] is None

    path = url(ana, f"/notes/{first['id']}")
    tag = call("GET", path, colleague)["ETag"]
    refused = call("PATCH", path, colleague, {"body": "Rewritten."}, **{"If-Match": tag})
    assert_problem(refused, 403)
    assert AuditEvent.objects.filter(action="access.denied", resource_type="PatientNote").exists()

    edited = call(
        "PATCH", path, author, {"body": "Prefers mornings, not Mondays."}, **{"If-Match": tag}
    )
    assert edited.status_code == 200, edited.content
    assert edited.json()["edited"] is True
    stale = call("PATCH", path, author, {"body": "Again."}, **{"If-Match": tag})
    assert_problem(stale, 412)
    assert PatientNote.objects.get(pk=first["id"]).body == "Prefers mornings, not Mondays."


def test_notes_are_closed_to_front_desk_and_empty_bodies_refused(ana: Patient) -> None:
    assert_problem(call("GET", url(ana, "/notes"), token_for(Role.FRONT_DESK)), 403)
    assert_problem(
        call("POST", url(ana, "/notes"), token_for(Role.CARE_COORDINATOR), {"body": ""}), 422
    )


# --- consents and preferences -------------------------------------------------------


def test_consents_are_recorded_and_listed_newest_first_with_a_kind_filter(ana: Patient) -> None:
    token = token_for(Role.FRONT_DESK)
    for body in (
        {"kind": "comm_sms", "status": "granted", "method": "verbal", "note": "By phone."},
        {"kind": "treatment", "status": "granted", "method": "paper"},
        {"kind": "comm_sms", "status": "revoked", "method": "verbal"},
    ):
        response = call("POST", url(ana, "/consents"), token, body)
        assert response.status_code == 201, response.content
    history = call("GET", url(ana, "/consents?kind=comm_sms"), token).json()["items"]
    assert [r["status"] for r in history] == ["revoked", "granted"]
    assert history[0]["captured_by"] == "api-front_desk"
    assert ConsentRecord.objects.filter(patient=ana).count() == 3
    assert_problem(
        call(
            "POST",
            url(ana, "/consents"),
            token,
            {"kind": "treatment", "status": "granted", "method": "portal_esign"},
        ),
        422,
    )
    assert_problem(call("GET", url(ana, "/consents?kind=nonsense"), token), 422)
    clinician = token_for(Role.CLINICIAN, "dr-chen")
    assert call("GET", url(ana, "/consents"), clinician).status_code == 200
    refused = call(
        "POST",
        url(ana, "/consents"),
        clinician,
        {"kind": "treatment", "status": "granted", "method": "verbal"},
    )
    assert_problem(refused, 403)


PREFERENCES = {
    "channel_order": ["sms", "email"],
    "quiet_start": "20:00",
    "quiet_end": "09:00",
    "opt_ins": [{"channel": "sms", "purpose": "marketing", "opted_in": False}],
    "restricted_topics": ["hiv"],
    "channel_consents": {"comm_sms": "granted"},
    "method": "verbal",
}


def test_preferences_are_replaced_with_if_match_through_the_preference_service(
    ana: Patient,
) -> None:
    token = token_for(Role.CARE_COORDINATOR)
    before = call("GET", url(ana, "/preferences"), token)
    assert before.status_code == 200
    assert before.json()["channel_consents"]["comm_sms"] is None
    assert_problem(call("PUT", url(ana, "/preferences"), token, PREFERENCES), 428)

    put = call("PUT", url(ana, "/preferences"), token, PREFERENCES, **{"If-Match": before["ETag"]})
    assert put.status_code == 200, put.content
    after = put.json()
    assert after["channel_order"] == ["sms", "email"]
    assert after["quiet_start"] == "20:00:00"
    assert after["restricted_topics"] == ["hiv"]
    assert after["channel_consents"]["comm_sms"] == "granted"
    assert AuditEvent.objects.filter(action="preferences.update", patient_id=ana.id).exists()

    stale = call(
        "PUT",
        url(ana, "/preferences"),
        token,
        {**PREFERENCES, "do_not_contact": True},
        **{"If-Match": before["ETag"]},
    )
    assert_problem(stale, 412)
    assert call("GET", url(ana, "/preferences"), token).json()["do_not_contact"] is False


def test_preference_input_errors_are_problems(ana: Patient) -> None:
    token = token_for(Role.CARE_COORDINATOR)
    tag = call("GET", url(ana, "/preferences"), token)["ETag"]
    for body in (
        {**PREFERENCES, "quiet_end": None},
        {**PREFERENCES, "channel_order": ["sms", "sms"]},
        {**PREFERENCES, "channel_consents": {"marketing": "granted"}},
        {**PREFERENCES, "method": "staff_esign"},
        {**PREFERENCES, "quiet_start": "25:00"},
    ):
        assert_problem(call("PUT", url(ana, "/preferences"), token, body, **{"If-Match": tag}), 422)
    assert_problem(call("GET", url(ana, "/preferences"), token_for(Role.ADMIN)), 403)


# --- registration -------------------------------------------------------------------


def test_registering_a_likely_duplicate_is_409_with_candidates_until_explained(
    ana: Patient,
) -> None:
    token = token_for(Role.FRONT_DESK)
    body = {"given_name": "Anna", "family_name": "Garcia", "birth_date": "1962-03-14"}
    conflict = assert_problem(call("POST", "/api/v1/patients", token, body), 409)
    assert conflict["candidates"] == [
        {"id": str(ana.id), "why": "same date of birth and a similar name"}
    ]
    assert Patient.objects.count() == 1

    explained = {**body, "not_a_duplicate_because": "Different mother's maiden name."}
    created = call("POST", "/api/v1/patients", token, explained)
    assert created.status_code == 201, created.content
    assert created.json()["given_name"] == "Anna"
    assert AuditEvent.objects.filter(
        action="patient.create", patient_id=created.json()["id"]
    ).exists()


def test_registration_refuses_bad_input_and_roles_that_may_not_write(ana: Patient) -> None:
    token = token_for(Role.FRONT_DESK)
    base = {"given_name": "Zed", "family_name": "Zulu", "birth_date": "1990-01-01"}
    assert_problem(
        call("POST", "/api/v1/patients", token, {**base, "birth_date": "2999-01-01"}), 422
    )
    assert_problem(call("POST", "/api/v1/patients", token, {**base, "phone": "12"}), 422)
    assert_problem(call("POST", "/api/v1/patients", token, {**base, "given_name": ""}), 422)
    assert_problem(
        call("POST", "/api/v1/patients", token_for(Role.CLINICIAN, "dr-chen"), base), 403
    )
    first = call("POST", "/api/v1/patients", token, {**base, "mrn": "RB-1"})
    assert first.status_code == 201
    again = {
        **base,
        "given_name": "Yan",
        "birth_date": "1991-01-01",
        "mrn": "RB-1",
        "not_a_duplicate_because": "A different person.",
    }
    assert_problem(call("POST", "/api/v1/patients", token, again), 409)


def test_reading_a_patient_gives_an_etag(ana: Patient) -> None:
    response = call("GET", url(ana), token_for(Role.FRONT_DESK))
    assert response.status_code == 200 and response["ETag"].startswith('"')
