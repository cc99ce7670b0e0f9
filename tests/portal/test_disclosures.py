"""Who looked at my record: the patient's accounting of disclosures in the portal."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from careloop.core import clock
from careloop.security.audit import audit_record
from careloop.security.models import AuditEvent, Role
from tests.patients.builders import make_location, make_patient, make_provider
from tests.portal.test_consents import portal_patient
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db


def page_of(client: Client, query: str = "") -> str:
    response = client.get(f"/portal/disclosures/{query}", secure=True)
    assert response.status_code == 200
    return response.content.decode()


def test_a_staff_read_of_the_patient_shows_who_with_their_role() -> None:
    provider = make_provider(make_location())
    patient, _, client = portal_patient()
    patient.primary_provider = provider
    patient.save(update_fields=["primary_provider"])
    nurse = staff_user(
        Role.CLINICIAN, "mchen", first_name="Maya", last_name="Chen", provider=provider
    )
    staff = force_verified_login(Client(), nurse)
    assert staff.get(f"/patients/{patient.pk}/", secure=True).status_code == 200

    page = page_of(client)

    assert "Maya Chen" in page and "Clinician" in page
    assert "Viewed: your record" in page


def test_other_patients_events_never_appear() -> None:
    patient, _, client = portal_patient()
    ben = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    snoop = staff_user(Role.FRONT_DESK, "snoop", first_name="Sam", last_name="Snoop")
    audit_record(action="patient.view", actor=snoop, patient_id=ben.pk, resource_type="Patient")
    audit_record(action="patient.update", actor=snoop, resource_type="Patient")

    page = page_of(client)

    assert "Sam Snoop" not in page
    assert "No one looked at this record" in page


def test_break_glass_shows_the_reason_and_sign_ins_and_refusals_do_not_show() -> None:
    patient, _, client = portal_patient()
    doctor = staff_user(Role.CLINICIAN, "er-doc", first_name="Ravi", last_name="Shah")
    audit_record(
        action="access.break_glass",
        actor=doctor,
        patient_id=patient.pk,
        resource_type="patient",
        reason="Unconscious in the ER",
    )
    audit_record(
        action="access.denied",
        actor=doctor,
        patient_id=patient.pk,
        resource_type="Patient",
        outcome="denied",
    )

    page = page_of(client)

    assert "Emergency access" in page and "Unconscious in the ER" in page
    assert page.count("Ravi Shah") == 1


def test_you_jobs_and_integrations_are_named_plainly() -> None:
    patient, user, client = portal_patient()
    audit_record(
        action="appointment.book", actor=user, patient_id=patient.pk, resource_type="appointment"
    )
    audit_record(
        action="message.enqueue",
        actor_kind="system",
        actor_id="journeys",
        patient_id=patient.pk,
        resource_type="message",
    )
    audit_record(
        action="fhir.read",
        actor_kind="integration",
        actor_id="epic-prod",
        patient_id=patient.pk,
        resource_type="Patient",
    )

    page = page_of(client)

    assert "You" in page and "Booked: appointments" in page
    assert "careloop, automatically" in page and "Prepared a message: messages" in page
    assert "A connected system (epic-prod)" in page


def test_newest_first_paged_and_filtered_by_dates() -> None:
    patient, _, client = portal_patient()
    desk = staff_user(Role.FRONT_DESK, "desk", first_name="Dana", last_name="Okafor")
    start = datetime.datetime(2026, 3, 1, 15, 0, tzinfo=datetime.UTC)
    for day in range(30):
        with clock.frozen(start + datetime.timedelta(days=day)):
            audit_record(
                action="patient.view", actor=desk, patient_id=patient.pk, resource_type="Patient"
            )

    first = client.get("/portal/disclosures/", secure=True)
    second = client.get("/portal/disclosures/?page=2", secure=True)
    march = client.get("/portal/disclosures/?since=2026-03-05&until=2026-03-07", secure=True)

    lines = first.context["result"].lines
    assert len(lines) == 25 and first.context["result"].has_next
    assert lines[0].at > lines[-1].at
    assert len(second.context["result"].lines) == 5
    assert [line.at.day for line in march.context["result"].lines] == [7, 6, 5]
    assert "page=2" in first.content.decode()


def test_a_backwards_date_range_is_refused_with_a_message() -> None:
    _, _, client = portal_patient()

    page = page_of(client, "?since=2026-03-07&until=2026-03-01")

    assert "The end date is before the start date." in page


def test_reading_the_report_is_audited_and_does_not_list_itself() -> None:
    patient, user, client = portal_patient()

    page_of(client)
    page = page_of(client)

    reads = AuditEvent.objects.filter(
        action="audit.search", patient_id=patient.pk, actor_id=str(user.pk)
    )
    assert reads.count() == 2
    assert "the access log of your record" not in page


def test_one_query_on_the_audit_table_per_page() -> None:
    patient, _, client = portal_patient()
    desk = staff_user(Role.FRONT_DESK, "desk")
    for _ in range(5):
        audit_record(
            action="patient.view", actor=desk, patient_id=patient.pk, resource_type="Patient"
        )

    with CaptureQueriesContext(connection) as queries:
        page_of(client)

    reads = [
        q["sql"]
        for q in queries.captured_queries
        if "security_auditevent" in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT")
    ]
    assert len(reads) == 1
    assert "patient_id" in reads[0]


def test_the_page_speaks_spanish() -> None:
    _, _, client = portal_patient()

    page = page_of(client, "?lang=es")

    assert "Quién consultó mi expediente" in page


def test_staff_are_refused_the_portal_report() -> None:
    staff = force_verified_login(Client(), staff_user(Role.FRONT_DESK, "desk"))

    assert staff.get("/portal/disclosures/", secure=True).status_code == 403
