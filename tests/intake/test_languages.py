"""Questionnaires in the patient's language: the FHIR `translation` extension on the
title, item texts and answer option displays, shown in the portal's language with the
base text where a translation is missing; answers are stored, and staff read them, in
the questionnaire's own words."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client

from careloop.core import clock
from careloop.intake.builtin import CSAT, CSAT_URL, NPS_URL
from careloop.intake.definition import (
    TRANSLATION,
    questionnaire_from_dict,
    translated,
    translations,
)
from careloop.intake.models import Purpose, Questionnaire, QuestionnaireResponse
from careloop.intake.services import builtin_install, questionnaire_import
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount
from careloop.security.models import Role
from tests.intake.builders import (
    assign,
    form_url,
    intake_definition,
    make_questionnaire,
    portal_client,
    portal_patient,
)
from tests.security.clinic import make_clinic, staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db


def _in(language: str, text: str) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": language},
                    {"url": "content", "valueString": text},
                ],
            }
        ]
    }


def _speaking(language: str) -> tuple[Patient, Client]:
    patient, user = portal_patient()
    patient.preferred_language = language
    patient.save(update_fields=["preferred_language"])
    return patient, portal_client(user)


def _survey(patient: Patient, url: str = CSAT_URL) -> Any:
    builtin_install()
    return assign(patient, Questionnaire.objects.get(url=url))


def test_a_spanish_speaking_patient_reads_the_satisfaction_survey_in_spanish() -> None:
    patient, client = _speaking("es")
    assignment = _survey(patient)

    page = client.get(form_url(assignment), secure=True).content.decode()
    listing = client.get("/portal/forms/", secure=True).content.decode()

    assert "<h1>¿Cómo fue su visita?</h1>" in page
    assert "En general, ¿qué tan satisfecho está con su visita?" in page
    assert ">Muy insatisfecho</label>" in page and ">Muy satisfecho</label>" in page
    assert "¿Hay algo que quiera decirnos?" in page and "Enviar mis respuestas" in page
    assert "Overall, how satisfied" not in page and "Very satisfied" not in page
    assert "¿Cómo fue su visita?" in listing


def test_an_english_speaking_patient_reads_the_survey_in_english() -> None:
    patient, client = _speaking("en")
    assignment = _survey(patient, NPS_URL)

    page = client.get(form_url(assignment), secure=True).content.decode()

    assert "<h1>Would you recommend us?</h1>" in page
    assert "How likely are you to recommend us" in page
    assert "What is the main reason for your score?" in page
    assert "¿" not in page


def test_answers_given_in_spanish_are_stored_and_shown_to_staff_in_the_surveys_own_words() -> None:
    clinic = make_clinic()
    clinic.ana.preferred_language = "es"
    clinic.ana.save(update_fields=["preferred_language"])
    user = staff_user(Role.PATIENT, "ana-portal")
    PortalAccount.objects.create(user=user, patient=clinic.ana, created_at=clock.now())
    assignment = _survey(clinic.ana)

    sent = portal_client(user).post(
        form_url(assignment),
        {"action": "submit", "q-satisfaction": "5", "q-comment": "Muy amables"},
        secure=True,
    )
    done = portal_client(user).get(sent["Location"], secure=True).content.decode()

    assert "Hemos recibido sus respuestas a «¿Cómo fue su visita?»." in done
    stored = QuestionnaireResponse.objects.get()
    items = {i["linkId"]: i for i in json.loads(stored.answers)["item"]}
    assert items["satisfaction"]["text"] == "Overall, how satisfied are you with your visit?"
    assert items["satisfaction"]["answer"][0]["valueCoding"]["display"] == "Very satisfied"
    assert stored.score == 5
    coordinator = force_verified_login(Client(), staff_user(Role.CARE_COORDINATOR, "coord"))
    staff_page = coordinator.get(
        f"/intake/patients/{clinic.ana.pk}/responses/{stored.pk}/", secure=True
    ).content.decode()
    assert "Overall, how satisfied are you with your visit?" in staff_page
    assert "Very satisfied" in staff_page and "Muy amables" in staff_page
    assert "Muy satisfecho" not in staff_page


def _translated_intake() -> dict[str, Any]:
    definition = intake_definition(_title=_in("es-MX", "Registro de paciente nuevo"))
    smoker, _packs, allergies, language = definition["item"][:4]
    smoker["_text"] = _in("es-MX", "¿Fuma?")
    allergies["_text"] = _in("es", "¿A cuáles de estos es alérgico?")
    allergies["answerOption"][1]["valueCoding"]["_display"] = _in("es", "Penicilina")
    language["answerOption"] = [
        {"valueString": "English", "_valueString": _in("es", "Inglés")},
        {"valueString": "Spanish", "_valueString": _in("es", "Español")},
    ]
    return definition


def test_an_imported_questionnaire_with_translations_shows_them_and_falls_back_to_its_text() -> (
    None
):
    _patient, user = portal_patient()
    client = portal_client(user)
    assignment = assign(_patient, make_questionnaire(_translated_intake()))

    spanish = client.get(form_url(assignment) + "?lang=es", secure=True).content.decode()
    english = client.get(form_url(assignment) + "?lang=en", secure=True).content.decode()

    # "es-MX" serves a Spanish reader; a text without a translation stays as written.
    assert "<h1>Registro de paciente nuevo</h1>" in spanish and "¿Fuma?" in spanish
    assert "¿A cuáles de estos es alérgico?" in spanish
    assert ">Penicilina</label>" in spanish and ">Peanuts</label>" in spanish
    assert 'value="Spanish"' in spanish and ">Español</label>" in spanish
    assert "How many packs a day?" in spanish
    assert "<h1>New patient intake</h1>" in english and "Do you smoke?" in english
    assert "¿Fuma?" not in english and ">Penicillin</label>" in english

    # The answer is the option's own value, whatever language the form was read in.
    client.post(
        form_url(assignment) + "?lang=es",
        {"action": "submit", "q-smoker": "false", "q-language": "Spanish"},
        secure=True,
    )
    answers = json.loads(QuestionnaireResponse.objects.get().answers)["item"]
    assert answers[1]["linkId"] == "language"
    assert answers[1]["text"] == "Which language do you prefer?"
    assert answers[1]["answer"] == [{"valueString": "Spanish"}]


def test_the_translation_of_the_exact_language_wins_and_others_are_ignored() -> None:
    found = translations(
        {
            "extension": [
                {"url": "http://example.org/other", "valueString": "x"},
                _in("es", "general")["extension"][0],
                _in("es-MX", "mexicano")["extension"][0],
                {"url": TRANSLATION, "extension": [{"url": "lang", "valueCode": "fr"}]},
            ]
        }
    )

    assert found == (("es", "general"), ("es-MX", "mexicano"))
    assert translated("base", found, "es-MX") == "mexicano"
    assert translated("base", found, "es") == "general"
    assert translated("base", found, "es-AR") == "general"
    assert translated("base", found, "fr") == "base"
    assert translated("base", found, "en") == "base"


def _untranslated(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untranslated(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_untranslated(v) for v in value]
    return value


def test_a_survey_installed_before_the_translations_gets_them_and_keeps_its_settings() -> None:
    bare = _untranslated(CSAT)
    assert "_title" not in bare and "_display" not in json.dumps(bare)
    old = questionnaire_import(
        actor=None, parsed=questionnaire_from_dict(bare), purpose=Purpose.SURVEY
    )
    Questionnaire.objects.filter(pk=old.pk).update(
        score_kind="csat", score_link_id="satisfaction", post_visit=True, status="retired"
    )
    before = Questionnaire.objects.get(pk=old.pk).updated_at

    builtin_install()
    builtin_install()

    upgraded = Questionnaire.objects.get(url=CSAT_URL)
    assert upgraded.pk == old.pk and upgraded.definition == CSAT
    assert upgraded.status == "retired" and upgraded.score_link_id == "satisfaction"
    assert upgraded.updated_at == before


def test_a_stored_survey_whose_questions_differ_is_left_as_it_is() -> None:
    changed = copy.deepcopy(CSAT)
    changed["item"] = changed["item"][:1]
    questionnaire_import(actor=None, parsed=questionnaire_from_dict(changed), purpose="survey")

    builtin_install()

    assert len(Questionnaire.objects.get(url=CSAT_URL).definition["item"]) == 1
