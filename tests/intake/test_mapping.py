"""Answers the practice maps onto the profile are copied there on completion, audited
and on the timeline; a saved (not sent) form changes nothing."""

from __future__ import annotations

import pytest

from careloop.patients.models import ContactPoint, PatientRelationship, TimelineEvent
from careloop.security.models import AuditEvent, Role
from tests.intake.builders import (
    assign,
    form_url,
    make_questionnaire,
    portal_client,
    portal_patient,
)

pytestmark = pytest.mark.django_db
MAPPING = {
    "language": "preferred_language",
    "emergency": "emergency_contact_name",
    "mobile": "mobile_phone",
}


def test_mapped_answers_reach_the_profile_on_completion_only() -> None:
    patient, user = portal_patient()
    assignment = assign(patient, make_questionnaire(mapping=MAPPING))
    client = portal_client(user)
    answers = {
        "q-smoker": "false",
        "q-language": "es",
        "q-emergency": "Luis Alvarez",
        "q-mobile": "(217) 555-0142",
    }

    client.post(form_url(assignment), {"action": "save", **answers}, secure=True)
    patient.refresh_from_db()
    assert (
        patient.preferred_language == "en"
        and not ContactPoint.objects.filter(patient=patient).exists()
    )

    client.post(form_url(assignment), {"action": "submit", **answers}, secure=True)

    patient.refresh_from_db()
    assert patient.preferred_language == "es"
    phone = ContactPoint.objects.get(patient=patient)
    assert phone.value == "+12175550142" and not phone.verified and not phone.can_sms
    relationship = PatientRelationship.objects.get(patient=patient)
    assert relationship.related_name == "Luis Alvarez"
    summaries = set(TimelineEvent.objects.filter(patient=patient).values_list("summary", flat=True))
    assert {
        "Preferred language now es (from a form)",
        "Contact details added from a form (unverified)",
        "Emergency contact added from a form",
    } <= summaries
    updates = AuditEvent.objects.filter(
        patient_id=patient.pk, action__in=["patient.update", "patient.relationship_add"]
    )
    assert updates.count() == 3 and {e.actor_id for e in updates} == {str(user.pk)}


def test_an_unusable_answer_is_skipped_and_said_so_on_the_timeline() -> None:
    patient, user = portal_patient()
    assignment = assign(patient, make_questionnaire(mapping={"mobile": "mobile_phone"}))

    portal_client(user).post(
        form_url(assignment),
        {"action": "submit", "q-smoker": "false", "q-mobile": "call my daughter"},
        secure=True,
    )

    assert not ContactPoint.objects.filter(patient=patient).exists()
    assert TimelineEvent.objects.filter(patient=patient, summary__contains="not copied").exists()


def test_the_admin_sets_a_mapping_and_an_unknown_field_is_refused() -> None:
    from django.test import Client

    from tests.security.clinic import staff_user
    from tests.security.personas import force_verified_login

    questionnaire = make_questionnaire()
    admin = force_verified_login(Client(), staff_user(Role.ADMIN, "admin"))
    url = f"/intake/questionnaires/{questionnaire.pk}/"
    settings = {"part": "settings", "purpose": "intake", "status": "active", "score_kind": ""}

    bad = admin.post(url, settings | {"map-mobile": "ssn"}, secure=True)
    assert bad.status_code == 200 and "not a profile field" in bad.content.decode()

    good = admin.post(url, settings | {"map-mobile": "mobile_phone"}, secure=True)
    assert good.status_code == 302
    questionnaire.refresh_from_db()
    assert questionnaire.mapping == {"mobile": "mobile_phone"}


def test_a_patient_merge_moves_forms_and_answers_to_the_surviving_record() -> None:
    import datetime

    from careloop.intake.models import FormAssignment, QuestionnaireResponse
    from careloop.patients.merge import patient_merge
    from tests.patients.builders import make_patient
    from tests.security.clinic import staff_user

    duplicate, user = portal_patient()
    survivor = make_patient("Ana", "Alvarez", datetime.date(1960, 2, 3))
    assignment = assign(duplicate, make_questionnaire())
    portal_client(user).post(
        form_url(assignment), {"action": "submit", "q-smoker": "false"}, secure=True
    )

    patient_merge(
        actor=staff_user(Role.CARE_COORDINATOR, "coord"),
        survivor_id=survivor.pk,
        duplicate_id=duplicate.pk,
    )

    assert FormAssignment.objects.get().patient_id == survivor.pk
    response = QuestionnaireResponse.objects.get()
    assert response.patient_id == survivor.pk and '"valueBoolean":false' in response.answers
