"""Contact points and coverage: add, edit, remove through the pages; normalised, audited,
on the timeline, refused to roles without write access."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.test import Client

from careloop.patients.contacts import ContactDetails, contact_point_add
from careloop.patients.models import ContactPoint, Coverage, Patient, TimelineEvent
from careloop.security import crypto
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import add_contact, add_coverage, make_patient, make_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

PHONE = {
    "action": "add",
    "system": "phone",
    "use": "mobile",
    "value": "(217) 555-0142",
    "rank": "1",
    "can_sms": "on",
    "can_voice": "on",
}


@pytest.fixture
def patient() -> Patient:
    return make_patient("Ana", "García", datetime.date(1962, 3, 14))


def signed_in(client: Client, role: str = Role.FRONT_DESK) -> User:
    user = make_user(role)
    force_verified_login(client, user)
    return user


def url(patient: Patient, page: str = "contacts") -> str:
    return f"/patients/{patient.id}/{page}/"


def test_a_phone_number_is_stored_in_e164_and_the_change_is_audited_and_on_the_timeline(
    client: Client, patient: Patient
) -> None:
    user = signed_in(client)
    response = client.post(url(patient), PHONE, secure=True)
    assert response.status_code == 302
    contact = ContactPoint.objects.get(patient=patient)
    assert contact.value == "+12175550142"
    assert (contact.can_sms, contact.can_voice, contact.can_email) == (True, True, False)
    event = AuditEvent.objects.get(action="patient.update")
    assert event.fields == ["contact_points"] and event.actor_id == str(user.pk)
    entry = TimelineEvent.objects.get(patient=patient)
    assert entry.summary == "Contact details changed" and entry.actor == user
    page = client.get(url(patient), secure=True).content.decode()
    assert "+12175550142" in page and "Contact details saved." in page


def test_an_email_address_is_lowercased(client: Client, patient: Patient) -> None:
    signed_in(client)
    data = PHONE | {"system": "email", "value": " Ana.Garcia@Example.ORG ", "use": "home"}
    data = {k: v for k, v in data.items() if k not in ("can_sms", "can_voice")} | {
        "can_email": "on"
    }
    assert client.post(url(patient), data, secure=True).status_code == 302
    assert ContactPoint.objects.get(patient=patient).value == "ana.garcia@example.org"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"value": "555-01"}, "That is not a valid phone number."),
        ({"system": "email", "value": "not-an-address"}, "That is not a valid e-mail address."),
        ({"value": ""}, "This field is required."),
        ({"rank": "zero"}, "Enter a whole number."),
        ({"can_email": "on"}, "A phone number cannot carry e-mail."),
    ],
)
def test_bad_input_is_shown_back_as_a_form_error_and_nothing_is_saved(
    client: Client, patient: Patient, changes: dict[str, str], message: str
) -> None:
    signed_in(client)
    response = client.post(url(patient), PHONE | changes, secure=True)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ContactPoint.objects.exists()
    assert not AuditEvent.objects.filter(action="patient.update").exists()


def test_an_email_address_cannot_carry_sms(client: Client, patient: Patient) -> None:
    signed_in(client)
    data = PHONE | {"system": "email", "value": "a@example.org"}
    response = client.post(url(patient), data, secure=True)
    assert "An e-mail address cannot carry SMS or voice." in response.content.decode()


def test_editing_a_contact_reseals_it_and_updates_its_search_index(
    client: Client, patient: Patient
) -> None:
    signed_in(client)
    contact = add_contact(patient, "phone", "217-555-0100", can_sms=True)
    form = client.get(url(patient), {"edit": str(contact.id)}, secure=True).content.decode()
    assert 'value="+12175550100"' in form or 'value="217-555-0100"' in form
    data = PHONE | {"action": "edit", "contact": str(contact.id), "value": "217 555 0199"}
    assert client.post(url(patient), data, secure=True).status_code == 302
    contact.refresh_from_db()
    assert contact.value == "+12175550199"
    # The patient search finds the new number, not the old one.
    results = client.post("/patients/", {"q": "217-555-0199"}, secure=True).content.decode()
    assert str(patient.id) in results
    old = client.post("/patients/", {"q": "217-555-0100"}, secure=True).content.decode()
    assert str(patient.id) not in old


def test_removing_a_contact_deletes_it_and_records_the_change(
    client: Client, patient: Patient
) -> None:
    signed_in(client)
    contact = add_contact(patient, "phone", "217-555-0100")
    data = {"action": "remove", "contact": str(contact.id)}
    assert client.post(url(patient), data, secure=True).status_code == 302
    assert not ContactPoint.objects.exists()
    assert AuditEvent.objects.get(action="patient.update").resource_id == str(contact.id)
    assert TimelineEvent.objects.get(patient=patient).summary == "Contact details changed"


def test_another_patients_contact_cannot_be_edited_through_this_page(
    client: Client, patient: Patient
) -> None:
    signed_in(client)
    other = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    theirs = add_contact(other, "phone", "217-555-0111")
    data = PHONE | {"action": "edit", "contact": str(theirs.id)}
    assert client.post(url(patient), data, secure=True).status_code == 404
    removal = {"action": "remove", "contact": str(theirs.id)}
    assert client.post(url(patient), removal, secure=True).status_code == 404
    assert ContactPoint.objects.get(pk=theirs.pk).value == "217-555-0111"  # untouched


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.MARKETING, Role.ANALYST, Role.AUDITOR])
def test_roles_without_contact_write_are_refused(
    client: Client, patient: Patient, role: str
) -> None:
    signed_in(client, role)
    assert client.get(url(patient), secure=True).status_code in (403, 404)
    assert client.post(url(patient), PHONE, secure=True).status_code in (403, 404)
    assert not ContactPoint.objects.exists()


def test_the_service_refuses_a_role_without_write_access(patient: Patient) -> None:
    from careloop.core.errors import PermissionDenied

    clinician = make_user(Role.CLINICIAN)
    details = ContactDetails("phone", "mobile", "2175550142", 1, False, True, False, False)
    with pytest.raises(PermissionDenied):
        contact_point_add(actor=clinician, patient_id=patient.id, details=details)
    assert AuditEvent.objects.get(action="access.denied").patient_id == patient.id


def test_the_number_is_encrypted_at_rest_and_absent_from_the_audit_and_timeline(
    client: Client, patient: Patient
) -> None:
    signed_in(client)
    client.post(url(patient), PHONE, secure=True)
    row = ContactPoint.objects.values_list("value", flat=True).get()
    assert b"2175550142" not in bytes(row)
    for event in AuditEvent.objects.all():
        assert "2175550142" not in f"{event.resource_id} {event.fields}"
    assert "2175550142" not in TimelineEvent.objects.get().summary
    assert crypto  # the module that sealed it


# --- coverage ---------------------------------------------------------------------------

COVERAGE = {
    "payer_category": "commercial",
    "payer_name": "Blue Prairie",
    "plan_name": "PPO Gold",
    "member_id": "XQZ123456789",
    "subscriber_relationship": "self",
    "period_start": "2026-01-01",
    "period_end": "",
    "status": "active",
    "rank": "1",
}


def test_a_coverage_is_added_with_an_encrypted_member_id_and_audited(
    client: Client, patient: Patient
) -> None:
    signed_in(client)
    assert client.post(url(patient, "coverage"), COVERAGE, secure=True).status_code == 302
    coverage = Coverage.objects.get(patient=patient)
    assert coverage.member_id == "XQZ123456789"
    raw = Coverage.objects.values_list("member_id", flat=True).get()
    assert b"XQZ123456789" not in bytes(raw)
    assert coverage.period_start == datetime.date(2026, 1, 1)
    assert AuditEvent.objects.get(action="patient.update").fields == ["coverages"]
    assert TimelineEvent.objects.get(patient=patient).summary == "Coverage added"


def test_a_coverage_is_edited_in_place(client: Client, patient: Patient) -> None:
    signed_in(client)
    coverage = add_coverage(patient, payer_category="medicare", payer_name="Medicare Part B")
    form = client.get(url(patient, "coverage"), {"edit": str(coverage.id)}, secure=True)
    assert 'value="Medicare Part B"' in form.content.decode()
    data = COVERAGE | {"coverage": str(coverage.id), "status": "cancelled"}
    assert client.post(url(patient, "coverage"), data, secure=True).status_code == 302
    coverage.refresh_from_db()
    assert (coverage.status, coverage.payer_name) == ("cancelled", "Blue Prairie")
    assert TimelineEvent.objects.get(patient=patient).summary == "Coverage changed"


def test_a_coverage_ending_before_it_starts_is_a_form_error(
    client: Client, patient: Patient
) -> None:
    signed_in(client)
    data = COVERAGE | {"period_end": "2025-01-01"}
    response = client.post(url(patient, "coverage"), data, secure=True)
    assert response.status_code == 200
    assert "The coverage cannot end before it starts." in response.content.decode()
    assert not Coverage.objects.exists()


def test_an_unknown_coverage_id_is_a_404(client: Client, patient: Patient) -> None:
    signed_in(client)
    data = COVERAGE | {"coverage": str(uuid.uuid4())}
    assert client.post(url(patient, "coverage"), data, secure=True).status_code == 404


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.MARKETING])
def test_roles_without_coverage_write_are_refused(
    client: Client, patient: Patient, role: str
) -> None:
    signed_in(client, role)
    assert client.post(url(patient, "coverage"), COVERAGE, secure=True).status_code in (403, 404)
    assert not Coverage.objects.exists()
