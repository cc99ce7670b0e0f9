"""Consents in the portal: sign what is owed, see and download what was signed, revoke
what may be revoked; staff see the portal's records in the consent history."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.test import Client

from careloop.consent.documents import consent_document_publish, consent_needs
from careloop.consent.ledger import consent_current
from careloop.consent.models import (
    CaptureMethod,
    ConsentDocument,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
)
from careloop.consent.services import consent_sign
from careloop.core import clock
from careloop.core.errors import PermissionDenied
from careloop.patients.models import Patient, PatientRelationship
from careloop.portal.models import PortalAccount
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import make_patient
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

TELEHEALTH_TEXT = "Video visits are private. You may ask for an in-person visit at any time."


def portal_patient(given: str = "Ana", family: str = "Alvarez") -> tuple[Patient, User, Client]:
    """A patient with a portal account, signed in on a client of their own."""
    patient = make_patient(given, family, datetime.date(1960, 2, 3))
    user = staff_user(Role.PATIENT, f"portal-{given.lower()}-{uuid.uuid4().hex[:6]}")
    PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())
    client = Client()
    client.force_login(user)
    return patient, user, client


def publish(kind: ConsentKind, body: str, version: str = "2026-11") -> ConsentDocument:
    return consent_document_publish(
        actor=None,
        kind=kind,
        version=version,
        title=f"{ConsentKind(kind).label} consent",
        body=body,
        requires_acknowledgement=True,
    )


def sign(client: Client, document: ConsentDocument, **overrides: str) -> object:
    data = {
        "signer_name": "Ana Alvarez",
        "agree": "on",
        "document_sha256": document.body_sha256,
    } | overrides
    return client.post(f"/portal/consents/sign/{document.kind}/", data, secure=True)


def test_pending_consents_are_listed_with_a_link_to_their_text() -> None:
    patient, _, client = portal_patient()
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)

    page = client.get("/portal/consents/", secure=True)
    assert page.status_code == 200
    assert document.title in page.content.decode()
    sign_page = client.get(f"/portal/consents/sign/{document.kind}/", secure=True)
    assert sign_page.status_code == 200
    assert TELEHEALTH_TEXT in sign_page.content.decode()


def test_signing_records_a_portal_esignature_with_the_document_hash() -> None:
    patient, user, client = portal_patient()
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)

    response = sign(client, document)

    assert response.status_code == 302
    record = ConsentRecord.objects.get(patient=patient, kind=ConsentKind.TELEHEALTH)
    assert record.status == ConsentStatus.GRANTED
    assert record.capture_method == CaptureMethod.PORTAL_ESIGNATURE
    assert record.signature_name == "Ana Alvarez"
    assert record.document_sha256 == document.body_sha256
    assert record.captured_by == user and record.captured_at is not None
    assert record.signer_is_proxy is False
    assert consent_needs(patient=patient, at=clock.now()) == []
    assert AuditEvent.objects.filter(
        action="consent.record", patient_id=patient.pk, actor_kind="patient"
    ).exists()


def test_a_sign_form_submitted_twice_makes_one_record() -> None:
    patient, _, client = portal_patient()
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)

    sign(client, document)
    second = sign(client, document)

    assert second.status_code == 302
    assert ConsentRecord.objects.filter(patient=patient, kind="telehealth").count() == 1


def test_signing_needs_the_agreement_and_a_name_and_writes_nothing_without() -> None:
    patient, _, client = portal_patient()
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)

    no_agree = client.post(
        "/portal/consents/sign/telehealth/",
        {"signer_name": "Ana Alvarez", "document_sha256": document.body_sha256},
        secure=True,
    )
    blank = sign(client, document, signer_name="   ")

    assert no_agree.status_code == 200 and blank.status_code == 200
    assert "aria-invalid" in blank.content.decode() or "field-error" in blank.content.decode()
    assert not ConsentRecord.objects.filter(patient=patient).exists()


def test_a_document_republished_while_reading_is_not_signed_unread() -> None:
    patient, _, client = portal_patient()
    old = publish(ConsentKind.TELEHEALTH, "old text", version="2026-01")
    publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT, version="2026-11")

    response = sign(client, old)

    assert response.status_code == 200
    assert "changed while you were reading" in response.content.decode()
    assert not ConsentRecord.objects.filter(patient=patient).exists()


def test_a_signed_consent_downloads_as_an_attachment_with_its_signature() -> None:
    patient, _, client = portal_patient()
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)
    sign(client, document)
    record = ConsentRecord.objects.get(patient=patient)

    listing = client.get("/portal/consents/", secure=True).content.decode()
    response = client.get(f"/portal/consents/{record.pk}/download/", secure=True)

    assert f"/portal/consents/{record.pk}/download/" in listing
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    text = response.content.decode()
    assert TELEHEALTH_TEXT in text
    assert "Ana Alvarez" in text and document.body_sha256 in text
    assert AuditEvent.objects.filter(action="consent.export", resource_id=str(record.pk)).exists()


def test_another_patients_consent_cannot_be_downloaded() -> None:
    _, _, client = portal_patient()
    ben, ben_user, _ = portal_patient("Ben", "Brooks")
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)
    record = consent_sign(
        actor=ben_user,
        patient=ben,
        document=document,
        signer_name="Ben Brooks",
        signer_is_proxy=False,
        source_ip=None,
        method=CaptureMethod.PORTAL_ESIGNATURE,
    )

    response = client.get(f"/portal/consents/{record.pk}/download/", secure=True)

    assert response.status_code == 404
    assert b"Ben Brooks" not in response.content


def test_a_patient_user_may_not_sign_for_someone_elses_record() -> None:
    _, ana_user, _ = portal_patient()
    ben, _, _ = portal_patient("Ben", "Brooks")
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)

    with pytest.raises(PermissionDenied):
        consent_sign(
            actor=ana_user,
            patient=ben,
            document=document,
            signer_name="Ana Alvarez",
            signer_is_proxy=False,
            source_ip=None,
            method=CaptureMethod.PORTAL_ESIGNATURE,
        )
    assert not ConsentRecord.objects.filter(patient=ben).exists()


def test_staff_may_not_record_a_portal_esignature() -> None:
    patient, _, _ = portal_patient()
    desk = staff_user(Role.FRONT_DESK, "desk")
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)

    with pytest.raises(PermissionDenied):
        consent_sign(
            actor=desk,
            patient=patient,
            document=document,
            signer_name="Ana Alvarez",
            signer_is_proxy=False,
            source_ip=None,
            method=CaptureMethod.PORTAL_ESIGNATURE,
        )


def test_a_proxy_with_may_sign_consents_signs_for_the_child_as_a_proxy() -> None:
    parent, _, client = portal_patient("Maria", "Alvarez")
    child = make_patient("Sofia", "Alvarez", datetime.date(2015, 6, 1))
    PatientRelationship.objects.create(
        patient=child,
        related_patient=parent,
        code="parent",
        may_view_record=True,
        may_sign_consents=True,
        period_start=datetime.date(2015, 6, 1),
        created_at=clock.now(),
    )
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)
    session = client.session
    session["careloop.portal.acting_for"] = str(child.pk)
    session.save()

    response = sign(client, document, signer_name="Maria Alvarez")

    assert response.status_code == 302
    record = ConsentRecord.objects.get(patient=child)
    assert record.signer_is_proxy and record.proxy_name == "Maria Alvarez"
    assert record.proxy_authority == "Parent"
    assert not ConsentRecord.objects.filter(patient=parent).exists()


def test_a_proxy_without_may_sign_consents_is_refused() -> None:
    parent, _, client = portal_patient("Maria", "Alvarez")
    child = make_patient("Sofia", "Alvarez", datetime.date(2015, 6, 1))
    PatientRelationship.objects.create(
        patient=child,
        related_patient=parent,
        code="parent",
        may_view_record=True,
        may_sign_consents=False,
        period_start=datetime.date(2015, 6, 1),
        created_at=clock.now(),
    )
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)
    session = client.session
    session["careloop.portal.acting_for"] = str(child.pk)
    session.save()

    response = sign(client, document, signer_name="Maria Alvarez")

    assert response.status_code == 404
    assert not ConsentRecord.objects.exists()


def test_revoking_a_revocable_consent_appends_a_revoked_record() -> None:
    patient, _, client = portal_patient()
    document = publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)
    sign(client, document)
    data = {"signer_name": "Ana Alvarez", "confirm": "on"}

    first = client.post("/portal/consents/revoke/telehealth/", data, secure=True)
    again = client.post("/portal/consents/revoke/telehealth/", data, secure=True)

    assert first.status_code == 302 and again.status_code == 302
    records = list(ConsentRecord.objects.filter(patient=patient).order_by("recorded_at"))
    assert [r.status for r in records] == [ConsentStatus.GRANTED, ConsentStatus.REVOKED]
    assert records[1].capture_method == CaptureMethod.PORTAL_ESIGNATURE
    assert records[1].signature_name == "Ana Alvarez"
    now = clock.now()
    assert consent_current(patient=patient, kind=ConsentKind.TELEHEALTH, at=now) == "revoked"
    assert consent_needs(patient=patient, at=now) != []


@pytest.mark.parametrize(
    ("kind", "reason"), [("npp_ack", "cannot be taken back"), ("treatment", "care team")]
)
def test_a_non_revocable_consent_is_refused_with_the_reason(kind: str, reason: str) -> None:
    patient, _, client = portal_patient()
    document = publish(ConsentKind(kind), "Text of the document.")
    sign(client, document)

    response = client.post(
        f"/portal/consents/revoke/{kind}/",
        {"signer_name": "Ana Alvarez", "confirm": "on"},
        secure=True,
    )

    assert response.status_code == 409
    assert reason in response.content.decode()
    assert list(ConsentRecord.objects.filter(patient=patient).values_list("status", flat=True)) == [
        "granted"
    ]


def test_staff_see_the_portal_signature_and_its_source_in_the_history() -> None:
    patient, _, client = portal_patient()
    sign(client, publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT))
    desk = force_verified_login(Client(), staff_user(Role.FRONT_DESK, "desk"))

    page = desk.get(f"/patients/{patient.pk}/consents/", secure=True).content.decode()

    assert "Portal e-signature" in page


def test_the_consents_page_speaks_spanish() -> None:
    _, _, client = portal_patient()
    publish(ConsentKind.TELEHEALTH, TELEHEALTH_TEXT)

    page = client.get("/portal/consents/?lang=es", secure=True).content.decode()

    assert "Consentimientos" in page
    assert "Esperando su firma" in page


def test_staff_and_visitors_cannot_open_the_consents_page() -> None:
    desk = force_verified_login(Client(), staff_user(Role.FRONT_DESK, "desk"))

    assert desk.get("/portal/consents/", secure=True).status_code == 403
    anonymous = Client().get("/portal/consents/", secure=True)
    assert anonymous.status_code == 302 and "/portal/signin/" in anonymous["Location"]
