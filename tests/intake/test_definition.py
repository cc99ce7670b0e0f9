"""Importing Questionnaires: good ones are stored; bad ones are refused with reasons,
by the `careloop intake import` command and by the staff upload page alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from careloop.intake.definition import QuestionnaireInvalid, questionnaire_parse
from careloop.intake.models import Questionnaire
from careloop.security.models import AuditEvent, Role
from tests.intake.builders import INTAKE, intake_definition, intake_json
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login


def _errors(text: str) -> list[str]:
    with pytest.raises(QuestionnaireInvalid) as refused:
        questionnaire_parse(text)
    return refused.value.errors


def test_a_good_questionnaire_parses_into_items() -> None:
    parsed = questionnaire_parse(intake_json())
    assert parsed.title == "New patient intake" and parsed.version == "1"
    packs = parsed.items[1]
    assert packs.link_id == "packs" and packs.required and packs.enable_when[0].answer is True
    assert [o.display for o in parsed.items[2].options] == ["Peanuts", "Penicillin"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"resourceType": "Patient"}), "not a FHIR Questionnaire"),
        (json.dumps(intake_definition(status="finished")), "status must be one of"),
        (
            json.dumps(
                intake_definition(item=[{"linkId": "a", "type": "attachment", "text": "x"}])
            ),
            "not supported",
        ),
        (
            json.dumps(intake_definition(item=[{"linkId": "a", "type": "choice", "text": "x"}])),
            "needs answerOption",
        ),
        (
            json.dumps(
                intake_definition(
                    item=[
                        {
                            "linkId": "a",
                            "type": "string",
                            "text": "x",
                            "enableWhen": [
                                {"question": "nope", "operator": "=", "answerString": "y"}
                            ],
                        }
                    ]
                )
            ),
            "which is not a question of this form",
        ),
        (
            json.dumps(
                intake_definition(
                    item=[
                        {"linkId": "a", "type": "string", "text": "x"},
                        {
                            "linkId": "b",
                            "type": "string",
                            "text": "y",
                            "enableWhen": [{"question": "a", "operator": "~", "answerString": "y"}],
                        },
                    ]
                )
            ),
            "operator '~' is not one of",
        ),
        (json.dumps(intake_definition(item=[{"text": "no link id", "type": "string"}])), "linkId"),
        (
            json.dumps(
                intake_definition(
                    item=[{"linkId": "a", "type": "string"}, {"linkId": "a", "type": "text"}]
                )
            ),
            "used more than once",
        ),
        (json.dumps(intake_definition(url=None)), "url is required"),
    ],
)
def test_a_bad_questionnaire_is_refused_with_a_reason(text: str, reason: str) -> None:
    assert any(reason in error for error in _errors(text)), _errors(text)


@pytest.mark.django_db
def test_the_command_imports_a_file_and_refuses_the_same_version_twice(tmp_path: Path) -> None:
    path = tmp_path / "intake.json"
    path.write_text(intake_json())

    call_command("intake", "import", str(path))

    stored = Questionnaire.objects.get(url=INTAKE["url"])
    assert (
        stored.title == "New patient intake" and stored.definition["item"][0]["linkId"] == "smoker"
    )
    assert AuditEvent.objects.filter(
        action="intake.questionnaire_save", resource_id=str(stored.pk)
    ).exists()
    with pytest.raises(CommandError, match="already imported"):
        call_command("intake", "import", str(path))


@pytest.mark.django_db
def test_the_command_says_what_is_wrong_with_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(intake_definition(item=[{"linkId": "a", "type": "choice", "text": "x"}]))
    )

    with pytest.raises(CommandError, match="needs answerOption"):
        call_command("intake", "import", str(path))
    assert not Questionnaire.objects.filter(url=INTAKE["url"]).exists()


@pytest.mark.django_db
def test_an_admin_uploads_a_questionnaire_and_a_bad_one_is_explained() -> None:
    admin = force_verified_login(Client(), staff_user(Role.ADMIN, "admin"))
    bad = SimpleUploadedFile("bad.json", b"{oops", content_type="application/json")
    page = admin.post("/intake/questionnaires/", {"file": bad, "purpose": "intake"}, secure=True)
    assert page.status_code == 200 and "not JSON" in page.content.decode()

    good = SimpleUploadedFile(
        "intake.json", intake_json().encode(), content_type="application/json"
    )
    response = admin.post(
        "/intake/questionnaires/", {"file": good, "purpose": "pre_registration"}, secure=True
    )

    stored = Questionnaire.objects.get(url=INTAKE["url"])
    assert (
        response.status_code == 302
        and response["Location"] == f"/intake/questionnaires/{stored.pk}/"
    )
    assert stored.purpose == "pre_registration"
