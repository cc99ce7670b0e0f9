"""What is recorded, and the auditor's pages: search, exports, a patient's accounting."""

from __future__ import annotations

import csv
import datetime
import io
import re
import uuid

import orjson
import pytest
from django.db import transaction
from django.test import Client, RequestFactory, override_settings

from careloop.core import clock
from careloop.security.audit import audit_record, audit_seal
from careloop.security.audit_search import audit_disclosures_for_patient
from careloop.security.auth.signin import REAUTH_AT
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import make_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

PATIENT = uuid.UUID("6f1c9d7e-0000-4000-8000-000000000001")
OTHER_PATIENT = uuid.UUID("6f1c9d7e-0000-4000-8000-000000000002")
DAY = datetime.datetime(2026, 3, 10, 15, 0, tzinfo=datetime.UTC)


def as_auditor(client: Client, *, fresh_reauth: bool = False) -> User:
    auditor = make_user(Role.AUDITOR, "audrey")
    force_verified_login(client, auditor)
    if fresh_reauth:
        session = client.session
        session[REAUTH_AT] = clock.now().timestamp()
        session.save()
    return auditor


def view_patient(user: User, patient_id: uuid.UUID, at: datetime.datetime = DAY) -> AuditEvent:
    """The event recorded for the view, sealed (as the worker's sealer would a second later)."""
    with clock.frozen(at):
        event = audit_record(
            action="patient.view",
            actor=user,
            patient_id=patient_id,
            resource_type="Patient",
            resource_id=str(patient_id),
            fields=["name", "birth_date"],
        )
    audit_seal()
    return AuditEvent.objects.get(pk=event.pk)


def seqs(html: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'data-seq="(\d+)"', html)]


# --- what audit_record records ---------------------------------------------------------


def test_a_request_supplies_the_staff_actor_and_the_source_address() -> None:
    nurse = make_user(Role.CLINICIAN, "nurse.kim")
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.7")
    request.user = nurse

    event = audit_record(action="patient.view", request=request, patient_id=PATIENT)

    assert (event.actor_kind, event.actor_id, event.actor_label) == (
        "user",
        str(nurse.pk),
        "nurse.kim",
    )
    assert event.source_ip == "10.0.0.7"


def test_a_patient_user_is_recorded_by_id_only() -> None:
    patient_user = make_user(Role.PATIENT, "ana.rivera@example.com")

    event = audit_record(action="patient.view", actor=patient_user, patient_id=PATIENT)

    assert (event.actor_kind, event.actor_id, event.actor_label) == (
        "patient",
        str(patient_user.pk),
        "",
    )


@override_settings(BEHIND_PROXY=True)
def test_behind_a_proxy_the_address_is_the_one_the_proxy_appended() -> None:
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9"
    )

    event = audit_record(action="auth.login_failed", request=request, outcome="failure")

    assert event.source_ip == "203.0.113.9"
    assert event.actor_kind == "anonymous"


def test_forwarded_for_is_ignored_when_not_behind_a_proxy() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6")

    assert audit_record(action="auth.logout", request=request).source_ip == "10.0.0.2"


def test_an_event_rolls_back_with_the_action_it_records() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="patient.update", actor_kind="system", actor_id="job")
        raise RuntimeError("the update failed")

    assert not AuditEvent.objects.exists()
    event = audit_record(action="patient.update", actor_kind="system", actor_id="job")
    audit_seal()
    assert AuditEvent.objects.get(pk=event.pk).seq == 1


def test_unknown_actions_and_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        audit_record(action="patient.peek")
    with pytest.raises(ValueError, match="outcome"):
        audit_record(action="patient.view", outcome="ok")


# --- the auditor's search --------------------------------------------------------------


def test_the_auditor_searches_by_patient_user_action_outcome_and_days(client: Client) -> None:
    kim = make_user(Role.CLINICIAN, "nurse.kim")
    lee = make_user(Role.FRONT_DESK, "desk.lee")
    wanted = view_patient(kim, PATIENT)
    view_patient(kim, OTHER_PATIENT)
    view_patient(lee, PATIENT)
    view_patient(kim, PATIENT, at=DAY - datetime.timedelta(days=3))
    with clock.frozen(DAY):
        audit_record(action="patient.view", actor=kim, patient_id=PATIENT, outcome="denied")
    as_auditor(client)

    response = client.get(
        "/audit/",
        {
            "patient": str(PATIENT),
            "user": "nurse.kim",
            "action": "patient.view",
            "outcome": "success",
            "since": "2026-03-10",
            "until": "2026-03-10",
        },
        secure=True,
    )

    assert response.status_code == 200
    assert seqs(response.content.decode()) == [wanted.seq]


def test_the_search_shows_newest_first_and_is_itself_audited(client: Client) -> None:
    kim = make_user(Role.CLINICIAN, "nurse.kim")
    first, second = view_patient(kim, PATIENT), view_patient(kim, OTHER_PATIENT)
    auditor = as_auditor(client)

    html = client.get("/audit/", {"user": "nurse.kim"}, secure=True).content.decode()

    assert seqs(html) == [second.seq, first.seq]
    search = AuditEvent.objects.get(action="audit.search")
    assert (search.actor_label, search.fields) == (auditor.username, ["user=nurse.kim"])


def test_an_htmx_search_gets_only_the_results(client: Client) -> None:
    view_patient(make_user(Role.CLINICIAN, "nurse.kim"), PATIENT)
    as_auditor(client)

    html = client.get("/audit/", headers={"HX-Request": "true"}, secure=True).content.decode()

    assert "<html" not in html
    assert 'data-table="audit-events"' in html


def test_a_malformed_filter_is_shown_not_searched(client: Client) -> None:
    as_auditor(client)

    response = client.get("/audit/", {"patient": "not-a-uuid"}, secure=True)

    assert response.status_code == 200
    assert "Enter a valid UUID" in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit.search").exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.CLINICIAN, Role.FRONT_DESK, Role.ANALYST])
def test_only_auditors_see_the_audit_log(client: Client, role: str) -> None:
    user = make_user(role)
    force_verified_login(client, user)

    for path in (
        "/audit/",
        "/audit/export.csv",
        "/audit/export.ndjson",
        f"/audit/patients/{PATIENT}/disclosures/",
    ):
        assert client.get(path, secure=True).status_code == 403
    assert AuditEvent.objects.filter(action="access.denied", actor_label=user.username).count() == 4
    assert "Audit log" not in client.get("/", secure=True).content.decode()


def test_the_nav_links_the_audit_log_for_auditors(client: Client) -> None:
    as_auditor(client)

    assert 'href="/audit/"' in client.get("/audit/", secure=True).content.decode()


# --- exports ---------------------------------------------------------------------------


def test_an_export_asks_for_the_password_again_first(client: Client) -> None:
    as_auditor(client)

    response = client.get("/audit/export.ndjson", secure=True)

    assert response.status_code == 302
    assert "reauth" in response["Location"]
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_fhir_export_streams_one_audit_event_per_line(client: Client) -> None:
    kim = make_user(Role.CLINICIAN, "nurse.kim")
    event = view_patient(kim, PATIENT)
    view_patient(kim, OTHER_PATIENT)
    as_auditor(client, fresh_reauth=True)

    response = client.get("/audit/export.ndjson", {"patient": str(PATIENT)}, secure=True)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+ndjson"
    assert response["Content-Disposition"].startswith("attachment;")
    lines = b"".join(response.streaming_content).splitlines()  # type: ignore[attr-defined]
    resources = [orjson.loads(line) for line in lines]
    # The export is recorded before it streams and names the patient, so it is the last line.
    assert [r["subtype"][-1]["code"] for r in resources] == ["patient.view", "audit.export"]
    assert resources[0]["id"] == str(event.id)
    resource = resources[0]
    assert resource["resourceType"] == "AuditEvent"
    assert resource["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110110",
        "display": "Patient Record",
    }
    assert {"system": "urn:careloop:audit-action", "code": "patient.view"} in resource["subtype"]
    assert (resource["action"], resource["outcome"]) == ("R", "0")
    assert resource["recorded"].startswith("2026-03-10T15:00:00")
    agent = resource["agent"][0]
    assert agent["requestor"] is True
    assert agent["who"]["display"] == "nurse.kim"
    assert agent["who"]["identifier"]["value"] == str(kim.pk)
    assert resource["source"]["observer"] == {"display": "careloop"}
    patient_entity = resource["entity"][0]
    assert patient_entity["what"] == {"reference": f"Patient/{PATIENT}"}
    assert resource["entity"][1]["detail"] == [{"type": "fields", "valueString": "name,birth_date"}]
    exported = AuditEvent.objects.get(action="audit.export")
    assert (exported.resource_id, exported.patient_id) == ("ndjson", PATIENT)


def test_the_csv_export_follows_the_filter_and_defuses_formulas(client: Client) -> None:
    sneaky = make_user(Role.CLINICIAN, "=cmd")
    view_patient(sneaky, PATIENT)
    view_patient(make_user(Role.FRONT_DESK, "desk.lee"), PATIENT)
    as_auditor(client, fresh_reauth=True)

    response = client.get("/audit/export.csv", {"action": "patient.view"}, secure=True)

    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["username"] for row in rows] == ["'=cmd", "desk.lee"]
    assert rows[0]["patient_id"] == str(PATIENT)
    assert len(rows[0]["hash"]) == 64


def test_exported_audit_events_validate_as_fhir_r4b(client: Client) -> None:
    from fhir.resources.R4B import auditevent

    view_patient(make_user(Role.CLINICIAN, "nurse.kim"), PATIENT)
    audit_record(action="api.read", actor_kind="integration", actor_id="ehr-sync")
    as_auditor(client, fresh_reauth=True)

    response = client.get("/audit/export.ndjson", secure=True)

    for line in b"".join(response.streaming_content).splitlines():  # type: ignore[attr-defined]
        auditevent.AuditEvent.model_validate_json(line)


# --- a patient's accounting of disclosures ---------------------------------------------


def test_disclosures_list_who_accessed_the_record_and_leave_out_the_rest() -> None:
    kim = make_user(Role.CLINICIAN, "nurse.kim")
    patient_user = make_user(Role.PATIENT, "ana@example.com")
    auditor = make_user(Role.AUDITOR, "audrey")
    view_patient(kim, PATIENT, at=DAY)
    with clock.frozen(DAY + datetime.timedelta(hours=1)):
        audit_record(action="patient.view", actor=patient_user, patient_id=PATIENT)
        audit_record(action="patient.view", actor=kim, patient_id=PATIENT, outcome="denied")
        audit_record(
            action="export.ndjson", actor_kind="system", actor_id="nightly", patient_id=PATIENT
        )
        view_patient(kim, OTHER_PATIENT, at=DAY)

    report = audit_disclosures_for_patient(actor=auditor, patient_id=PATIENT)

    assert [(d.who, d.role, d.action) for d in report] == [
        ("careloop", "System job", "export.ndjson"),
        ("nurse.kim", "Clinician", "patient.view"),
    ]


def test_disclosures_are_not_for_other_staff() -> None:
    from careloop.core.errors import NotFound

    with pytest.raises(NotFound):
        audit_disclosures_for_patient(actor=make_user(Role.ADMIN), patient_id=PATIENT)


def test_the_auditor_reads_a_patients_disclosures_page(client: Client) -> None:
    view_patient(make_user(Role.CLINICIAN, "nurse.kim"), PATIENT)
    as_auditor(client)

    html = client.get(f"/audit/patients/{PATIENT}/disclosures/", secure=True).content.decode()

    assert "nurse.kim" in html
    assert "Clinician" in html
