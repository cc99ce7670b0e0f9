"""The insurance card: a patient uploads the front and back from the portal, staff with
coverage read see it.

Through the pages (/portal/insurance/, /insurance-cards/) and the service
(careloop.portal.insurance): PNG and PDF accepted and stored encrypted, a file too big,
of another type or an SVG with script refused with a reason and nothing written,
another patient's card a 404, a staff role without coverage read a 403, the home
task gone once the front is on file, a form sent twice writes one card per side, and
a new upload replaces the side while the old one is kept.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from careloop.core import clock
from careloop.patients.models import Patient, PatientRelationship, TimelineEvent
from careloop.portal.attachments import AttachmentRefused, Upload
from careloop.portal.insurance import insurance_card_upload
from careloop.portal.models import InsuranceCard, InsuranceCardChunk, PortalAccount
from careloop.security.models import AuditEvent, Role, User
from tests.patients.builders import add_coverage, make_location, make_patient, make_provider
from tests.portal.people import ana
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00\x00\x00\x01" * 2 + b"\x08\x02\x00\x00\x00"
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
    b"<script>alert(document.cookie)</script></svg>"
)
PAGE = "/portal/insurance/"


def portal_user(patient: Patient, username: str) -> PortalAccount:
    user = staff_user(Role.PATIENT, username)
    return PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())


def signed_in(user: User) -> Client:
    return force_verified_login(Client(), user)


@pytest.fixture
def world() -> dict[str, Any]:
    """Ana (a portal account; Dr Chen's patient), Ben (another patient with an account),
    a front-desk user (coverage read) and Dr Chen (no coverage read)."""
    chen = make_provider(make_location("Main Street Clinic"), "Dr. Maya Chen")
    patient = ana()
    patient.primary_provider = chen
    patient.save(update_fields=["primary_provider"])
    ben = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    return {
        "account": portal_user(patient, "ana-portal"),
        "patient": patient,
        "ben": portal_user(ben, "ben-portal"),
        "desk": staff_user(Role.FRONT_DESK, "desk"),
        "clinician": staff_user(Role.CLINICIAN, "chen", provider=chen),
        "marketing": staff_user(Role.MARKETING, "marketing"),
    }


def files(**sides: tuple[str, bytes]) -> dict[str, SimpleUploadedFile]:
    return {side: SimpleUploadedFile(name, content) for side, (name, content) in sides.items()}


def upload(client: Client, key: str = "", **sides: tuple[str, bytes]) -> Any:
    return client.post(PAGE, {"idempotency_key": key, **files(**sides)}, secure=True)


def current(patient: Patient) -> dict[str, InsuranceCard]:
    rows = InsuranceCard.objects.filter(patient=patient, superseded_at__isnull=True)
    return {row.side: row for row in rows}


# --- uploading -----------------------------------------------------------------------------


def test_a_patient_uploads_the_front_as_png_and_the_back_as_pdf(world: dict[str, Any]) -> None:
    client = signed_in(world["account"].user)

    response = upload(client, "k1", front=("front.png", PNG), back=("back.pdf", PDF))

    assert response.status_code == 302 and response["Location"] == PAGE
    cards = current(world["patient"])
    assert cards["front"].content_type == "image/png"
    assert cards["back"].content_type == "application/pdf"
    assert cards["front"].uploaded_by == world["account"].user
    page = client.get(PAGE, secure=True).content.decode()
    assert f"/portal/insurance/files/{cards['front'].pk}/" in page
    assert "<img" not in page  # never shown inline
    download = client.get(f"/portal/insurance/files/{cards['back'].pk}/", secure=True)
    assert download.status_code == 200 and download.content == PDF
    assert download["Content-Disposition"].startswith("attachment")
    assert download["X-Content-Type-Options"] == "nosniff"
    # Audited and on the timeline, without the file's name or content.
    assert AuditEvent.objects.filter(action="insurance_card.upload").count() == 1
    assert AuditEvent.objects.filter(action="insurance_card.view").count() == 1
    summaries = TimelineEvent.objects.filter(patient=world["patient"]).values_list(
        "summary", flat=True
    )
    assert "Insurance card uploaded in the portal (front, back)" in summaries
    assert not any("front.png" in s for s in summaries)


def test_the_card_is_stored_encrypted(world: dict[str, Any]) -> None:
    insurance_card_upload(
        user=world["account"].user,
        patient=world["patient"],
        uploads={"front": Upload(name="ana-alvarez-card.png", content=PNG)},
        idempotency_key="enc",
    )
    tables = (InsuranceCard._meta.db_table, InsuranceCardChunk._meta.db_table)
    with connection.cursor() as cursor:
        raw = []
        for table in tables:
            cursor.execute(f"SELECT * FROM {table}")  # nosemgrep: careloop-no-string-built-sql
            raw.extend(str(row) for row in cursor.fetchall())
    text = " ".join(raw)
    assert "ana-alvarez-card" not in text
    assert "iVBORw0KGgo" not in text  # the PNG's base64 is not there in the clear


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("card.svg", SVG, "SVG images are not accepted"),
        ("card.txt", b"Member 12345\n", "This type of file is not accepted"),
        ("card.gif", b"GIF89a\x01\x00\x01\x00", "This type of file is not accepted"),
    ],
)
def test_a_file_of_the_wrong_type_is_refused_with_a_reason(
    world: dict[str, Any], name: str, content: bytes, reason: str
) -> None:
    client = signed_in(world["account"].user)

    response = upload(client, "bad", front=("front.png", PNG), back=(name, content))

    assert response.status_code == 200 and reason in response.content.decode()
    assert not InsuranceCard.objects.exists()  # one refusal refuses both sides


def test_a_file_over_the_size_limit_is_refused(world: dict[str, Any], settings: Any) -> None:
    settings.PORTAL_ATTACHMENT_MAX_BYTES = 4096
    client = signed_in(world["account"].user)

    response = upload(client, "big", front=("front.png", PNG + b"\x00" * 5000))

    assert response.status_code == 200 and "larger than" in response.content.decode()
    assert not InsuranceCard.objects.exists()
    with pytest.raises(AttachmentRefused):
        insurance_card_upload(
            user=world["account"].user,
            patient=world["patient"],
            uploads={"front": Upload(name="front.png", content=PNG + b"\x00" * 5000)},
            idempotency_key="big",
        )


def test_an_empty_form_asks_for_a_file(world: dict[str, Any]) -> None:
    response = signed_in(world["account"].user).post(PAGE, {"idempotency_key": "none"}, secure=True)
    assert response.status_code == 200
    assert "Choose a file for the front or the back" in response.content.decode()


def test_a_form_sent_twice_writes_one_card_per_side(world: dict[str, Any]) -> None:
    client = signed_in(world["account"].user)

    upload(client, "same", front=("front.png", PNG), back=("back.pdf", PDF))
    upload(client, "same", front=("front.png", PNG), back=("back.pdf", PDF))

    assert InsuranceCard.objects.filter(side="front").count() == 1
    assert InsuranceCard.objects.filter(side="back").count() == 1
    assert AuditEvent.objects.filter(action="insurance_card.upload").count() == 1


def test_a_new_upload_replaces_the_side_and_keeps_the_old_one(world: dict[str, Any]) -> None:
    client = signed_in(world["account"].user)
    upload(client, "first", front=("front.png", PNG))
    first = current(world["patient"])["front"]

    upload(client, "second", front=("new-front.pdf", PDF))

    now_on_file = current(world["patient"])
    assert now_on_file["front"].content_type == "application/pdf"
    first.refresh_from_db()
    assert first.superseded_at is not None
    assert InsuranceCard.objects.filter(side="front").count() == 2


def test_the_card_is_linked_to_the_coverage_on_file(world: dict[str, Any]) -> None:
    coverage = add_coverage(
        world["patient"],
        payer_category="commercial",
        payer_name="Acme Health",
        plan_name="Gold PPO",
        member_id="XZ123456789",
    )
    client = signed_in(world["account"].user)
    upload(client, "cov", front=("front.png", PNG))

    assert current(world["patient"])["front"].coverage == coverage
    page = client.get(PAGE, secure=True).content.decode()
    assert "Acme Health" in page and "Gold PPO" in page
    assert "6789" in page and "XZ123456789" not in page  # the member id is masked


# --- who may see it ------------------------------------------------------------------------


def test_another_patient_cannot_download_the_card(world: dict[str, Any]) -> None:
    upload(signed_in(world["account"].user), "k", front=("front.png", PNG))
    card = current(world["patient"])["front"]

    response = signed_in(world["ben"].user).get(f"/portal/insurance/files/{card.pk}/", secure=True)

    assert response.status_code == 404
    missing = signed_in(world["account"].user).get(
        f"/portal/insurance/files/{uuid.uuid4()}/", secure=True
    )
    assert missing.status_code == 404


def test_staff_with_coverage_read_see_the_card_and_it_is_audited(world: dict[str, Any]) -> None:
    upload(signed_in(world["account"].user), "k", front=("front.png", PNG), back=("b.pdf", PDF))
    card = current(world["patient"])["front"]
    patient = world["patient"]
    desk = signed_in(world["desk"])

    detail = desk.get(f"/patients/{patient.pk}/", secure=True).content.decode()
    listing = desk.get(f"/insurance-cards/{patient.pk}/", secure=True)
    download = desk.get(f"/insurance-cards/{patient.pk}/files/{card.pk}/", secure=True)

    assert f"/insurance-cards/{patient.pk}/" in detail
    assert listing.status_code == 200
    assert f"/insurance-cards/{patient.pk}/files/{card.pk}/" in listing.content.decode()
    assert download.status_code == 200 and download.content == PNG
    assert download["Content-Disposition"].startswith("attachment")
    views = AuditEvent.objects.filter(action="insurance_card.view", actor_id=str(world["desk"].pk))
    assert views.count() == 2
    # A card of another patient, named under this patient's URL, is not found.
    ben_card = insurance_card_upload(
        user=world["ben"].user,
        patient=world["ben"].patient,
        uploads={"front": Upload(name="f.png", content=PNG)},
        idempotency_key="ben",
    )[0]
    assert (
        desk.get(f"/insurance-cards/{patient.pk}/files/{ben_card.pk}/", secure=True).status_code
        == 404
    )


@pytest.mark.parametrize("role", ["clinician", "marketing"])
def test_a_staff_role_without_coverage_read_is_refused(world: dict[str, Any], role: str) -> None:
    upload(signed_in(world["account"].user), "k", front=("front.png", PNG))
    card = current(world["patient"])["front"]
    client = signed_in(world[role])
    patient = world["patient"]

    listing = client.get(f"/insurance-cards/{patient.pk}/", secure=True)
    download = client.get(f"/insurance-cards/{patient.pk}/files/{card.pk}/", secure=True)

    assert listing.status_code == 403 and download.status_code == 403
    assert AuditEvent.objects.filter(action="access.denied", actor_id=str(world[role].pk)).exists()


def test_a_view_only_proxy_sees_the_card_but_may_not_upload(world: dict[str, Any]) -> None:
    leo = make_patient("Leo", "Alvarez", datetime.date(2018, 4, 5))
    PatientRelationship.objects.create(
        patient=leo,
        related_patient=world["patient"],
        code="parent",
        period_start=datetime.date(2025, 1, 1),
        may_view_record=True,
        created_at=clock.now(),
    )
    client = signed_in(world["account"].user)
    client.post("/portal/switch/", {"patient": str(leo.pk)}, secure=True)

    page = client.get(PAGE, secure=True)
    refused = upload(client, "leo", front=("front.png", PNG))

    assert page.status_code == 200 and 'name="front"' not in page.content.decode()
    assert refused.status_code == 404
    assert not InsuranceCard.objects.exists()


# --- the home task -------------------------------------------------------------------------


def test_the_home_task_links_to_the_page_and_goes_once_the_front_is_on_file(
    world: dict[str, Any],
) -> None:
    client = signed_in(world["account"].user)
    home = client.get("/portal/", secure=True).content.decode()
    assert "Upload your insurance card" in home and f'href="{PAGE}"' in home

    upload(client, "k", front=("front.png", PNG))

    assert "Upload your insurance card" not in client.get("/portal/", secure=True).content.decode()


def test_the_page_speaks_spanish(world: dict[str, Any]) -> None:
    page = signed_in(world["account"].user).get(f"{PAGE}?lang=es", secure=True)
    text = page.content.decode()
    assert "Tarjeta del seguro" in text and "Frente de la tarjeta" in text
    assert 'for="id_front"' in text and 'for="id_back"' in text


def test_a_scheduling_proxy_uploads_the_card_without_seeing_the_record(
    world: dict[str, Any],
) -> None:
    leo = make_patient("Leo", "Alvarez", datetime.date(2018, 4, 5))
    add_coverage(leo, payer_category="commercial", payer_name="Kids Health")
    PatientRelationship.objects.create(
        patient=leo,
        related_patient=world["patient"],
        code="parent",
        period_start=datetime.date(2025, 1, 1),
        may_schedule=True,
        created_at=clock.now(),
    )
    client = signed_in(world["account"].user)
    client.post("/portal/switch/", {"patient": str(leo.pk)}, secure=True)

    response = upload(client, "leo", front=("front.png", PNG))
    page = client.get(PAGE, secure=True).content.decode()

    assert response.status_code == 302
    assert current(leo)["front"].uploaded_by == world["account"].user
    assert "Kids Health" not in page and "/portal/insurance/files/" not in page
    assert AuditEvent.objects.filter(action="portal.proxy_access", patient_id=leo.pk).exists()
