"""Intake test builders: a questionnaire with a conditional question, a patient with a
portal account, and her signed-in portal client."""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

from django.test import Client

from careloop.core import clock
from careloop.intake.definition import questionnaire_from_dict
from careloop.intake.models import FormAssignment, Questionnaire
from careloop.intake.services import assignment_create, questionnaire_import
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount
from careloop.scheduling.models import Appointment
from careloop.security.models import Role, User
from tests.patients.builders import make_patient
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

LANGS = "urn:ietf:bcp:47"
INTAKE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": "https://riverbend.example/Questionnaire/intake",
    "version": "1",
    "title": "New patient intake",
    "status": "active",
    "item": [
        {"linkId": "smoker", "text": "Do you smoke?", "type": "boolean", "required": True},
        {
            "linkId": "packs",
            "text": "How many packs a day?",
            "type": "integer",
            "required": True,
            "enableWhen": [{"question": "smoker", "operator": "=", "answerBoolean": True}],
        },
        {
            "linkId": "allergies",
            "text": "Which of these are you allergic to?",
            "type": "choice",
            "repeats": True,
            "answerOption": [
                {
                    "valueCoding": {
                        "system": "http://snomed.info/sct",
                        "code": "91935009",
                        "display": "Peanuts",
                    }
                },
                {
                    "valueCoding": {
                        "system": "http://snomed.info/sct",
                        "code": "91936005",
                        "display": "Penicillin",
                    }
                },
            ],
        },
        {
            "linkId": "language",
            "text": "Which language do you prefer?",
            "type": "choice",
            "answerOption": [
                {"valueCoding": {"system": LANGS, "code": "en", "display": "English"}},
                {"valueCoding": {"system": LANGS, "code": "es", "display": "Español"}},
            ],
        },
        {"linkId": "emergency", "text": "Emergency contact (name)", "type": "string"},
        {"linkId": "mobile", "text": "Mobile phone", "type": "string"},
        {"linkId": "born", "text": "Date of your last flu shot", "type": "date"},
        {"linkId": "history", "text": "Anything else we should know?", "type": "text"},
    ],
}


def intake_definition(**changes: Any) -> dict[str, Any]:
    definition = copy.deepcopy(INTAKE)
    definition.update(changes)
    return definition


def intake_json(**changes: Any) -> str:
    return json.dumps(intake_definition(**changes))


def make_questionnaire(definition: dict[str, Any] | None = None, **fields: Any) -> Questionnaire:
    questionnaire = questionnaire_import(
        actor=None, parsed=questionnaire_from_dict(definition or intake_definition())
    )
    for name, value in fields.items():
        setattr(questionnaire, name, value)
    if fields:
        questionnaire.save()
    return questionnaire


def portal_patient(
    given: str = "Ana", family: str = "Alvarez", username: str = "ana-portal"
) -> tuple[Patient, User]:
    patient = make_patient(given, family, datetime.date(1960, 2, 3))
    user = staff_user(Role.PATIENT, username)
    PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())
    return patient, user


def portal_client(user: User) -> Client:
    return force_verified_login(Client(), user)


def assign(
    patient: Patient, questionnaire: Questionnaire, appointment: Appointment | None = None
) -> FormAssignment:
    return assignment_create(questionnaire=questionnaire, patient=patient, appointment=appointment)


def form_url(assignment: FormAssignment) -> str:
    return f"/portal/forms/{assignment.pk}/"


def matrix_assignment(patient: Patient) -> FormAssignment:
    """A fresh intake form for the route matrix's sample patient."""
    questionnaire = Questionnaire.objects.filter(url=INTAKE["url"]).first() or make_questionnaire()
    return assign(patient, questionnaire)


def matrix_response(patient: Patient) -> Any:
    """A completed satisfaction survey of the route matrix's sample patient."""
    from careloop.intake.builtin import CSAT_URL, SCALE
    from careloop.intake.services import builtin_install, response_record

    builtin_install()
    assignment = assign(patient, Questionnaire.objects.get(url=CSAT_URL))
    author = User.objects.get_or_create(username="matrix-intake-author")[0]
    return response_record(
        user=author,
        assignment_id=assignment.pk,
        patient=patient,
        answers={"satisfaction": [(SCALE, "5")]},
        complete=True,
    )
