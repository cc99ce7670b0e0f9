"""Post-visit surveys: the journey's `{{ link.form }}` opens the visit's own survey,
and the figures (CSAT average, NPS) per provider and location come from SQL over the
plain score columns."""

from __future__ import annotations

import datetime
import itertools
import re

import pytest
from django.test import Client

from careloop.core import clock
from careloop.intake.builtin import CSAT_URL, NPS_URL
from careloop.intake.models import FormAssignment, Questionnaire, QuestionnaireResponse
from careloop.intake.selectors import survey_figures
from careloop.intake.services import assignment_create, builtin_install, response_record
from careloop.outreach.journeys import journey_send
from careloop.outreach.templates import templates_install_builtin
from careloop.patients.models import Patient
from careloop.portal.models import PortalAccount
from careloop.scheduling.models import Appointment, Provider
from careloop.security.models import Role, User
from tests.intake.builders import portal_client
from tests.outreach.conftest import reachable_patient
from tests.patients.builders import add_appointment, make_location, make_patient, make_provider
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db
SCALE = "https://careloop.example/fhir/CodeSystem/survey-scale"
_people = itertools.count()


def test_the_survey_message_links_to_the_visits_own_survey() -> None:
    templates_install_builtin()
    patient = reachable_patient()
    visit = add_appointment(
        patient,
        make_provider(make_location()),
        clock.now() - datetime.timedelta(days=1),
        status="fulfilled",
    )
    account_user = staff_user(Role.PATIENT, "rosa-portal")
    PortalAccount.objects.create(user=account_user, patient=patient, created_at=clock.now())

    first = journey_send(
        patient=patient,
        template_key="survey-satisfaction",
        channels=["email"],
        purpose="survey",
        idempotency_key="survey-1",
        at=clock.now(),
        appointment=visit,
    )
    second = journey_send(
        patient=patient,
        template_key="survey-satisfaction",
        channels=["sms"],
        purpose="survey",
        idempotency_key="survey-2",
        at=clock.now(),
        appointment=visit,
    )

    assert first is not None and second is not None
    assignment = FormAssignment.objects.get()
    assert assignment.appointment_id == visit.pk and assignment.questionnaire.url == CSAT_URL
    for message in (first, second):
        found = re.search(r"https?://\S+/portal/forms/([0-9a-f-]{36})/", message.body)
        assert found is not None and found.group(1) == str(assignment.pk), message.body
    page = portal_client(account_user).get(f"/portal/forms/{assignment.pk}/", secure=True)
    assert "Overall, how satisfied are you with your visit?" in page.content.decode()


def _answer(
    patient: Patient, user: User, visit: Appointment, url: str, link_id: str, code: int
) -> None:
    questionnaire = Questionnaire.objects.get(url=url)
    assignment = assignment_create(questionnaire=questionnaire, patient=patient, appointment=visit)
    response_record(
        user=user,
        assignment_id=assignment.pk,
        patient=patient,
        answers={link_id: [(SCALE, str(code))], "comment": ["Private comment"]},
        complete=True,
    )


def _visits(provider: Provider, count: int) -> list[tuple[Patient, User, Appointment]]:
    found = []
    for _ in range(count):
        n = next(_people)
        patient = make_patient("Survey", f"Taker{n}", datetime.date(1970, 1, 1))
        user = staff_user(Role.PATIENT, f"survey-taker-{n}")
        visit = add_appointment(
            patient, provider, clock.now() - datetime.timedelta(days=2), status="fulfilled"
        )
        found.append((patient, user, visit))
    return found


def test_csat_and_nps_per_provider_and_location() -> None:
    builtin_install()
    main, lakeside = make_location("Main Street Clinic"), make_location("Lakeside Clinic")
    chen, okafor = make_provider(main, "Dr. Maya Chen"), make_provider(lakeside, "Dr. Ike Okafor")
    for (patient, user, visit), score in zip(_visits(chen, 3), (5, 4, 3), strict=True):
        _answer(patient, user, visit, CSAT_URL, "satisfaction", score)
    for (patient, user, visit), score in zip(_visits(okafor, 4), (10, 9, 7, 2), strict=True):
        _answer(patient, user, visit, NPS_URL, "recommend", score)
    _answer(*_visits(okafor, 1)[0], CSAT_URL, "satisfaction", 1)
    admin = staff_user(Role.ADMIN, "admin")
    window = (clock.now() - datetime.timedelta(days=1), clock.now() + datetime.timedelta(days=1))

    figures = survey_figures(actor=admin, start=window[0], end=window[1])

    assert figures.total.csat_count == 4 and figures.total.csat_average == 3.25
    assert figures.total.nps_count == 4 and figures.total.nps == 25  # (2 - 1) / 4
    by_provider = {f.label: f for f in figures.by_provider}
    assert (
        by_provider["Dr. Maya Chen"].csat_average == 4.0
        and by_provider["Dr. Maya Chen"].nps is None
    )
    assert by_provider["Dr. Ike Okafor"].csat_average == 1.0
    assert (by_provider["Dr. Ike Okafor"].promoters, by_provider["Dr. Ike Okafor"].detractors) == (
        2,
        1,
    )
    by_location = {f.label: f for f in figures.by_location}
    assert (
        by_location["Lakeside Clinic"].nps == 25
        and by_location["Main Street Clinic"].csat_count == 3
    )
    # The score sits in a plain column; the comment stays in the encrypted answers.
    row = QuestionnaireResponse.objects.filter(score_kind="nps", score=2).get()
    assert row.provider_id == okafor.pk and row.location_id == lakeside.pk
    assert "Private comment" in row.answers

    later = survey_figures(
        actor=admin, start=window[1], end=window[1] + datetime.timedelta(days=30)
    )
    assert later.total.csat_count == 0 and later.by_provider == []

    page = force_verified_login(Client(), staff_user(Role.ANALYST, "analyst")).get(
        "/intake/surveys/", secure=True
    )
    text = page.content.decode()
    assert page.status_code == 200 and "Dr. Ike Okafor" in text and "Lakeside Clinic" in text
    assert "Private comment" not in text
    auditor = force_verified_login(Client(), staff_user(Role.AUDITOR, "auditor"))
    assert auditor.get("/intake/surveys/", secure=True).status_code == 403
