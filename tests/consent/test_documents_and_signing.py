"""Consent documents, e-signature, staff-recorded answers, history and FHIR export."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from fhir.resources.R4B.bundle import Bundle

from careloop.consent.documents import (
    DocumentError,
    consent_document_publish,
    consent_needs,
)
from careloop.consent.integrity import consent_verify
from careloop.consent.models import (
    CaptureMethod,
    ConsentDocument,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
)
from careloop.consent.services import ConsentError, consent_capture, consent_sign
from careloop.core.clock import now
from careloop.core.errors import PermissionDenied
from careloop.patients.models import Patient, TimelineEvent
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import make_location, make_patient, make_provider
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

NPP_TEXT = "We may use your health information for treatment, payment and operations."


def publish(version: str = "2026-11", body: str = NPP_TEXT) -> ConsentDocument:
    return consent_document_publish(
        actor=None,
        kind=ConsentKind.NPP_ACK,
        version=version,
        title="Notice of Privacy Practices",
        body=body,
        requires_acknowledgement=True,
    )


@pytest.fixture
def patient() -> Patient:
    provider = make_provider(make_location())
    return make_patient("Rosa", "Delgado", datetime.date(1961, 4, 2), primary_provider=provider)


@pytest.fixture
def desk() -> User:
    return staff_user(Role.FRONT_DESK, "desk")


def signed_in(user: User) -> Client:
    return force_verified_login(Client(), user)


# 1. Documents -------------------------------------------------------------------------


def test_a_patient_owes_the_npp_until_they_sign_its_current_version(
    patient: Patient, desk: User
) -> None:
    document = publish()
    assert consent_needs(patient=patient, at=now()) == [document]
    consent_sign(
        actor=desk,
        patient=patient,
        document=document,
        signer_name="Rosa Delgado",
        signer_is_proxy=False,
        source_ip="192.0.2.1",
    )
    assert consent_needs(patient=patient, at=now()) == []


def test_publishing_a_new_npp_version_asks_for_reacknowledgement(
    patient: Patient, desk: User
) -> None:
    first = publish("2026-01", "old text")
    consent_sign(
        actor=desk,
        patient=patient,
        document=first,
        signer_name="Rosa Delgado",
        signer_is_proxy=False,
        source_ip=None,
    )
    second = publish("2026-11", "new text")
    assert consent_needs(patient=patient, at=now()) == [second]


def test_a_version_label_cannot_be_published_twice() -> None:
    publish()
    with pytest.raises(DocumentError, match="already published"):
        publish()


def test_a_signed_in_non_admin_may_not_publish(desk: User) -> None:
    with pytest.raises(PermissionDenied):
        consent_document_publish(
            actor=desk,
            kind=ConsentKind.NPP_ACK,
            version="x",
            title="t",
            body="b",
            requires_acknowledgement=True,
        )


def test_the_publish_command_stores_the_text_and_its_hash(tmp_path: Path) -> None:
    body = tmp_path / "npp.txt"
    body.write_text(NPP_TEXT, encoding="utf-8")
    call_command(
        "consent", "publish", "--kind", "npp_ack", "--version", "2026-11",
        "--title", "Notice of Privacy Practices", "--file", str(body),
    )  # fmt: skip
    document = ConsentDocument.objects.get()
    assert document.body == NPP_TEXT and document.requires_acknowledgement
    assert len(document.body_sha256) == 64
    assert AuditEvent.objects.filter(action="consent.document_publish").exists()


def test_the_publish_command_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        call_command(
            "consent", "publish", "--kind", "npp_ack", "--version", "1",
            "--title", "t", "--file", str(tmp_path / "missing.txt"),
        )  # fmt: skip


# 2. Signing and recording -------------------------------------------------------------


def test_a_signature_records_document_hash_signer_address_and_integrity(
    patient: Patient, desk: User
) -> None:
    document = publish()
    record = consent_sign(
        actor=desk,
        patient=patient,
        document=document,
        signer_name="  Maria   Delgado ",
        signer_is_proxy=True,
        proxy_authority="Health care power of attorney",
        source_ip="192.0.2.7",
    )
    stored = ConsentRecord.objects.get(pk=record.pk)
    assert stored.capture_method == CaptureMethod.STAFF_ESIGNATURE
    assert stored.status == ConsentStatus.GRANTED
    assert stored.document_version == "2026-11"
    assert stored.document_sha256 == document.body_sha256
    assert stored.signature_name == "Maria Delgado"
    assert stored.proxy_authority == "Health care power of attorney"
    assert stored.captured_by == desk and stored.source_ip == "192.0.2.7"
    assert consent_verify(stored)
    stored.signature_name = "Someone Else"
    assert not consent_verify(stored)
    assert AuditEvent.objects.filter(action="consent.record", patient_id=patient.pk).exists()
    assert TimelineEvent.objects.filter(
        patient=patient, summary="Consent: Notice of Privacy Practices acknowledgement granted"
    ).exists()


def test_a_signature_without_a_name_is_refused(patient: Patient, desk: User) -> None:
    with pytest.raises(ConsentError):
        consent_sign(
            actor=desk,
            patient=patient,
            document=publish(),
            signer_name="   ",
            signer_is_proxy=False,
            source_ip=None,
        )
    assert not ConsentRecord.objects.exists()


def test_a_clinician_may_read_but_not_record_consents(patient: Patient) -> None:
    clinician = staff_user(Role.CLINICIAN, "doc", provider=patient.primary_provider)
    with pytest.raises(PermissionDenied):
        consent_capture(
            actor=clinician,
            patient=patient,
            kind=ConsentKind.SMS,
            status=ConsentStatus.GRANTED,
            method=CaptureMethod.VERBAL,
        )
    client = signed_in(clinician)
    url = f"/patients/{patient.pk}/consents/sign/npp_ack/"
    assert client.get(url, secure=True).status_code == 403
    assert client.post(url, {"signer_name": "X", "agree": "on"}, secure=True).status_code == 403
    assert client.get(f"/patients/{patient.pk}/consents/", secure=True).status_code == 200
    assert not ConsentRecord.objects.exists()


def test_staff_sign_through_the_page_and_land_on_the_history(patient: Patient, desk: User) -> None:
    publish()
    client = signed_in(desk)
    url = f"/patients/{patient.pk}/consents/sign/npp_ack/"
    page = client.get(url, secure=True)
    assert page.status_code == 200 and NPP_TEXT in page.content.decode()
    response = client.post(
        url, {"signer_name": "Rosa Delgado", "agree": "on"}, secure=True, REMOTE_ADDR="192.0.2.9"
    )
    assert response.status_code == 302
    assert response["Location"] == f"/patients/{patient.pk}/consents/"
    record = ConsentRecord.objects.get()
    assert record.source_ip == "192.0.2.9" and record.signature_name == "Rosa Delgado"


@pytest.mark.parametrize(
    "data",
    [
        {"signer_name": "", "agree": "on"},
        {"signer_name": "Rosa Delgado"},
        {"signer_name": "Rosa Delgado", "agree": "on", "signer_is_proxy": "on"},
    ],
    ids=["no-name", "not-agreed", "proxy-without-authority"],
)
def test_an_incomplete_signature_form_shows_errors_and_records_nothing(
    patient: Patient, desk: User, data: dict[str, str]
) -> None:
    publish()
    response = signed_in(desk).post(
        f"/patients/{patient.pk}/consents/sign/npp_ack/", data, secure=True
    )
    assert response.status_code == 200
    assert "alert-error" in response.content.decode()
    assert not ConsentRecord.objects.exists()


def test_an_unknown_consent_kind_is_not_found(patient: Patient, desk: User) -> None:
    response = signed_in(desk).get(f"/patients/{patient.pk}/consents/sign/nonsense/", secure=True)
    assert response.status_code == 404


def test_a_verbal_revocation_is_a_new_record_and_history_shows_both_newest_first(
    patient: Patient, desk: User
) -> None:
    client = signed_in(desk)
    url = f"/patients/{patient.pk}/consents/record/"
    for status in ("granted", "revoked"):
        response = client.post(
            url,
            {"kind": "comm_sms", "status": status, "method": "verbal", "note": "asked by phone"},
            secure=True,
        )
        assert response.status_code == 302
    records = list(ConsentRecord.objects.filter(patient=patient).order_by("recorded_at"))
    assert [r.status for r in records] == ["granted", "revoked"]
    html = client.get(f"/patients/{patient.pk}/consents/", secure=True).content.decode()
    assert html.index("Revoked") < html.index("Granted")
    assert AuditEvent.objects.filter(action="consent.view", patient_id=patient.pk).exists()


def test_staff_may_not_record_an_esignature_by_hand(patient: Patient, desk: User) -> None:
    response = signed_in(desk).post(
        f"/patients/{patient.pk}/consents/record/",
        {"kind": "npp_ack", "status": "granted", "method": "staff_esign"},
        secure=True,
    )
    assert response.status_code == 200 and "alert-error" in response.content.decode()
    assert not ConsentRecord.objects.exists()


def test_marketing_may_not_open_consent_pages(patient: Patient) -> None:
    client = signed_in(staff_user(Role.MARKETING, "mk"))
    assert client.get(f"/patients/{patient.pk}/consents/", secure=True).status_code == 403


# 3. FHIR export and the profile card --------------------------------------------------


def test_the_fhir_export_is_a_valid_r4_bundle_without_the_signature(
    patient: Patient, desk: User
) -> None:
    consent_sign(
        actor=desk,
        patient=patient,
        document=publish(),
        signer_name="Rosa Delgado",
        signer_is_proxy=False,
        source_ip="192.0.2.1",
    )
    consent_capture(
        actor=desk,
        patient=patient,
        kind=ConsentKind.SMS,
        status=ConsentStatus.REVOKED,
        method=CaptureMethod.VERBAL,
        scope="appointment",
    )
    response = signed_in(desk).get(f"/patients/{patient.pk}/consents/fhir/", secure=True)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    body = response.content.decode()
    assert "Rosa" not in body
    bundle = Bundle.model_validate(json.loads(body))
    consents = [entry.resource for entry in bundle.entry or []]
    revoked, signed = consents  # newest first
    assert revoked.status == "inactive" and revoked.provision.type == "deny"
    assert signed.status == "active" and signed.provision.type == "permit"
    assert signed.category[0].coding[0].code == "57016-8"
    assert signed.patient.reference == f"Patient/{patient.pk}"
    assert signed.sourceReference.identifier.value == "npp_ack|2026-11"
    assert AuditEvent.objects.filter(action="consent.export", patient_id=patient.pk).exists()


def test_the_patient_page_shows_the_consent_card_and_what_is_owed(
    patient: Patient, desk: User
) -> None:
    publish()
    html = signed_in(desk).get(f"/patients/{patient.pk}/", secure=True).content.decode()
    assert 'data-part="consents"' in html
    assert "Needs to acknowledge" in html
    assert f"/patients/{patient.pk}/consents/sign/npp_ack/" in html


def test_the_consent_card_is_hidden_from_roles_that_may_not_read_it(patient: Patient) -> None:
    admin = staff_user(Role.ADMIN, "adm")
    html = signed_in(admin).get(f"/patients/{patient.pk}/", secure=True).content.decode()
    assert 'data-part="consents"' not in html
