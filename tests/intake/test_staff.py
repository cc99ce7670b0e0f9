"""Staff read a patient's answers by role and care team, audited; the FHIR export is a
valid QuestionnaireResponse; the admin's editor writes the same FHIR JSON an import does."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse as FhirResponse

from careloop.core import clock
from careloop.intake.definition import questionnaire_from_dict
from careloop.intake.models import Questionnaire, QuestionnaireResponse
from careloop.portal.models import PortalAccount
from careloop.security.models import AuditEvent, Role
from tests.intake.builders import assign, form_url, make_questionnaire, portal_client
from tests.security.clinic import make_clinic, staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db


def _answered() -> tuple[object, QuestionnaireResponse]:
    clinic = make_clinic()
    user = staff_user(Role.PATIENT, "ana-portal")
    PortalAccount.objects.create(user=user, patient=clinic.ana, created_at=clock.now())
    assignment = assign(clinic.ana, make_questionnaire())
    portal_client(user).post(
        form_url(assignment),
        {"action": "submit", "q-smoker": "true", "q-packs": "2", "q-history": "Knee surgery 2019"},
        secure=True,
    )
    return clinic, QuestionnaireResponse.objects.get()


def _as(role: str, name: str, **fields: object) -> Client:
    return force_verified_login(Client(), staff_user(role, name, **fields))


def test_a_clinician_on_the_care_team_reads_the_answers_and_the_read_is_audited() -> None:
    clinic, response = _answered()
    chen = _as(Role.CLINICIAN, "chen", provider=clinic.chen)
    base = f"/intake/patients/{clinic.ana.pk}/"

    listing = chen.get(base, secure=True).content.decode()
    page = chen.get(f"{base}responses/{response.pk}/", secure=True).content.decode()

    assert "New patient intake" in listing and "Completed" in listing
    assert "How many packs a day?" in page and "Knee surgery 2019" in page and "Yes" in page
    views = AuditEvent.objects.filter(action="intake.response_view", patient_id=clinic.ana.pk)
    assert views.count() == 2
    assert (
        "Forms and surveys" in chen.get(f"/patients/{clinic.ana.pk}/", secure=True).content.decode()
    )


def test_the_fhir_export_is_a_valid_questionnaire_response() -> None:
    clinic, response = _answered()
    coordinator = _as(Role.CARE_COORDINATOR, "coord")

    download = coordinator.get(
        f"/intake/patients/{clinic.ana.pk}/responses/{response.pk}/fhir/", secure=True
    )

    assert download.status_code == 200 and download["Content-Type"] == "application/fhir+json"
    resource = json.loads(download.content)
    FhirResponse.model_validate(resource)
    assert resource["subject"] == {"reference": f"Patient/{clinic.ana.pk}"}
    assert resource["questionnaire"] == "https://riverbend.example/Questionnaire/intake|1"
    assert AuditEvent.objects.filter(action="fhir.export", resource_id=str(response.pk)).exists()


def test_roles_without_clinical_read_and_clinicians_off_the_team_are_refused() -> None:
    clinic, response = _answered()
    urls = [
        f"/intake/patients/{clinic.ana.pk}/",
        f"/intake/patients/{clinic.ana.pk}/responses/{response.pk}/",
        f"/intake/patients/{clinic.ana.pk}/responses/{response.pk}/fhir/",
    ]
    for role in (Role.FRONT_DESK, Role.ADMIN, Role.MARKETING, Role.ANALYST, Role.AUDITOR):
        client = _as(role, f"user-{role}")
        assert {client.get(url, secure=True).status_code for url in urls} == {403}, role
    okafor = _as(Role.CLINICIAN, "okafor", provider=clinic.okafor)
    assert {okafor.get(url, secure=True).status_code for url in urls} == {404}
    # Someone else's response id under this patient's URL finds nothing either.
    coordinator = _as(Role.CARE_COORDINATOR, "coord")
    assert (
        coordinator.get(
            f"/intake/patients/{clinic.ben.pk}/responses/{response.pk}/", secure=True
        ).status_code
        == 404
    )
    assert AuditEvent.objects.filter(action="access.denied", resource_type="clinical").count() >= 5


def test_the_admin_builds_a_form_in_the_editor() -> None:
    admin = _as(Role.ADMIN, "admin")
    data = {
        "title": "Pre-registration",
        "rows": "4",
        "item-0-text": "Your pharmacy",
        "item-0-type": "string",
        "item-0-required": "on",
        "item-1-text": "How did you hear about us?",
        "item-1-type": "checkboxes",
        "item-1-options": "A friend\nOur website\nA friend",
        "item-2-text": "",
        "item-3-text": "Your date of birth",
        "item-3-type": "date",
    }

    response = admin.post("/intake/questionnaires/new/", data, secure=True)

    questionnaire = Questionnaire.objects.get(title="Pre-registration")
    assert response.status_code == 302
    items = questionnaire.definition["item"]
    assert [(i["linkId"], i["type"]) for i in items] == [
        ("q1", "string"),
        ("q2", "choice"),
        ("q3", "date"),
    ]
    assert items[0]["required"] is True and items[1]["repeats"] is True
    assert items[1]["answerOption"] == [{"valueString": "A friend"}, {"valueString": "Our website"}]
    questionnaire_from_dict(questionnaire.definition)  # the same validation as an import

    # Editing keeps linkIds, drops an emptied question and adds a new one.
    edit = {
        "part": "items",
        "title": "Pre-registration",
        "rows": "3",
        "item-0-link": "q1",
        "item-0-text": "Your pharmacy (name and town)",
        "item-0-type": "string",
        "item-1-link": "q2",
        "item-1-text": "",
        "item-2-text": "Anything else?",
        "item-2-type": "text",
    }
    assert (
        admin.post(f"/intake/questionnaires/{questionnaire.pk}/", edit, secure=True).status_code
        == 302
    )
    questionnaire.refresh_from_db()
    assert [(i["linkId"], i["text"]) for i in questionnaire.definition["item"]] == [
        ("q1", "Your pharmacy (name and town)"),
        ("q4", "Anything else?"),  # q2 and q3 were other questions: never reused
    ]

    bad = admin.post(
        "/intake/questionnaires/new/",
        {"title": "Broken", "rows": "1", "item-0-text": "Pick one", "item-0-type": "choice"},
        secure=True,
    )
    assert bad.status_code == 200 and "needs answerOption" in bad.content.decode()
    assert not Questionnaire.objects.filter(title="Broken").exists()
    front_desk = _as(Role.FRONT_DESK, "desk")
    assert front_desk.get("/intake/questionnaires/new/", secure=True).status_code == 403
