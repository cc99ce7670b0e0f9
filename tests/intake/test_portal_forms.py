"""Filling a form in the portal: required answers, skip logic on submit, save and
resume, one response however often it is sent, answers encrypted, and nobody else's."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from careloop.intake.models import AssignmentStatus, FormAssignment, QuestionnaireResponse
from careloop.security.models import AuditEvent
from tests.intake.builders import (
    assign,
    form_url,
    make_questionnaire,
    portal_client,
    portal_patient,
)

pytestmark = pytest.mark.django_db


def _setup() -> tuple[object, FormAssignment, object]:
    patient, user = portal_patient()
    assignment = assign(patient, make_questionnaire())
    return patient, assignment, portal_client(user)


def test_the_patient_sees_her_forms_and_a_form_with_required_markers() -> None:
    _patient, assignment, client = _setup()

    listing = client.get("/portal/forms/", secure=True).content.decode()
    page = client.get(form_url(assignment), secure=True).content.decode()

    assert "New patient intake" in listing and form_url(assignment) in listing
    assert '<label for="q-mobile">Mobile phone</label>' in page
    assert "Do you smoke?" in page and "(required)" in page
    assert 'data-enable-when="[{&quot;q&quot;: &quot;smoker&quot;' in page
    assert "intake/enable_when.js" in page and 'nonce="' in page


def test_required_answers_are_asked_for_and_nothing_is_saved() -> None:
    _patient, assignment, client = _setup()

    page = client.post(form_url(assignment), {"action": "submit", "q-smoker": "true"}, secure=True)

    text = page.content.decode()
    assert page.status_code == 200 and "This question needs an answer." in text
    assert 'id="q-packs-error"' in text and 'id="q-smoker-error"' not in text
    assert not QuestionnaireResponse.objects.exists()


def test_a_bad_number_is_explained_in_spanish_too() -> None:
    _patient, assignment, client = _setup()

    page = client.post(
        form_url(assignment) + "?lang=es",
        {"action": "submit", "q-smoker": "true", "q-packs": "two"},
        secure=True,
    ).content.decode()

    assert "Escriba un número entero" in page and "Enviar mis respuestas" in page
    assert not QuestionnaireResponse.objects.exists()


def test_a_hidden_question_is_not_required_and_its_answer_is_dropped() -> None:
    _patient, assignment, client = _setup()

    response = client.post(
        form_url(assignment), {"action": "submit", "q-smoker": "false", "q-packs": "3"}, secure=True
    )

    assert response.status_code == 302 and response["Location"] == form_url(assignment) + "done/"
    stored = QuestionnaireResponse.objects.get()
    resource = json.loads(stored.answers)
    assert stored.status == "completed" and resource["status"] == "completed"
    assert [item["linkId"] for item in resource["item"]] == ["smoker"]
    assert resource["item"][0]["answer"] == [{"valueBoolean": False}]


def test_save_and_resume_then_submit() -> None:
    _patient, assignment, client = _setup()
    saved = client.post(
        form_url(assignment),
        {
            "action": "save",
            "q-smoker": "true",
            "q-allergies": ["91935009", "91936005"],
            "q-history": "Asthma as a child",
        },
        secure=True,
    )
    assert saved.status_code == 302 and saved["Location"] == "/portal/forms/"
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.IN_PROGRESS
    assert QuestionnaireResponse.objects.get().status == "in-progress"

    again = client.get(form_url(assignment), secure=True).content.decode()
    assert 'value="true" checked' in again and "Asthma as a child</textarea>" in again
    assert 'value="91935009" checked' in again and 'value="91936005" checked' in again

    done = client.post(
        form_url(assignment),
        {
            "action": "submit",
            "q-smoker": "true",
            "q-packs": "1",
            "q-allergies": ["91936005"],
            "submission_key": "k1",
        },
        secure=True,
    )
    assert done.status_code == 302
    stored = QuestionnaireResponse.objects.get()
    answers = {i["linkId"]: i["answer"] for i in json.loads(stored.answers)["item"]}
    assert answers["packs"] == [{"valueInteger": 1}]
    assert answers["allergies"] == [
        {
            "valueCoding": {
                "system": "http://snomed.info/sct",
                "code": "91936005",
                "display": "Penicillin",
            }
        }
    ]
    assert "history" not in answers  # not sent with the final answers
    assert (
        AuditEvent.objects.filter(action="intake.form_submit", patient_id=stored.patient_id).count()
        == 1
    )


def test_a_form_sent_twice_leaves_one_response() -> None:
    _patient, assignment, client = _setup()
    data = {"action": "submit", "q-smoker": "false", "submission_key": "same-key"}

    first = client.post(form_url(assignment), data, secure=True)
    second = client.post(form_url(assignment), data, secure=True)
    third = client.post(form_url(assignment), data | {"submission_key": "other-tab"}, secure=True)

    assert (
        first["Location"]
        == second["Location"]
        == third["Location"]
        == form_url(assignment) + "done/"
    )
    assert QuestionnaireResponse.objects.count() == 1
    assert AuditEvent.objects.filter(action="intake.form_submit").count() == 1
    assert "Thank you" in client.get(form_url(assignment) + "done/", secure=True).content.decode()


def test_answers_are_encrypted_at_rest() -> None:
    _patient, assignment, client = _setup()
    client.post(form_url(assignment), {"action": "save", "q-history": "CANARYHISTORY"}, secure=True)
    table = connection.ops.quote_name(QuestionnaireResponse._meta.db_table)
    with connection.cursor() as cursor:
        # A model's own table name, quoted: no value is interpolated.
        cursor.execute(f"SELECT answers FROM {table}")  # noqa: S608  # nosemgrep: careloop-no-string-built-sql
        raw = bytes(cursor.fetchone()[0])
    assert b"CANARYHISTORY" not in raw
    assert "CANARYHISTORY" in QuestionnaireResponse.objects.get().answers


def test_another_patients_assignment_is_not_found() -> None:
    _patient, assignment, _client = _setup()
    _ben, ben_user = portal_patient("Ben", "Brooks", "ben-portal")
    ben = portal_client(ben_user)

    assert ben.get(form_url(assignment), secure=True).status_code == 404
    assert (
        ben.post(
            form_url(assignment), {"action": "submit", "q-smoker": "false"}, secure=True
        ).status_code
        == 404
    )
    assert ben.get(form_url(assignment) + "done/", secure=True).status_code == 404
    assert "New patient intake" not in ben.get("/portal/forms/", secure=True).content.decode()
    assert not QuestionnaireResponse.objects.exists()


def test_a_form_required_before_a_visit_type_is_waiting_for_the_patient() -> None:
    import datetime

    from careloop.core import clock
    from tests.patients.builders import add_appointment, make_location, make_provider

    patient, user = portal_patient()
    make_questionnaire(required_for_types=["follow-up"])
    provider = make_provider(make_location())
    visit = add_appointment(patient, provider, clock.now() + datetime.timedelta(days=3))
    add_appointment(patient, provider, clock.now() - datetime.timedelta(days=3))  # past
    client = portal_client(user)

    listing = client.get("/portal/forms/", secure=True).content.decode()
    client.get("/portal/forms/", secure=True)

    assignment = FormAssignment.objects.get(patient=patient)
    assert assignment.appointment_id == visit.pk and assignment.due is not None
    assert "New patient intake" in listing and "Please fill it by" in listing
