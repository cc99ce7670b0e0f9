"""Break-the-glass: a typed reason opens one patient outside the care team for 60 minutes."""

from __future__ import annotations

import datetime
import re
import uuid

import pytest
from django.db import connection
from django.test import Client

from careloop.core import clock
from careloop.core.errors import PermissionDenied
from careloop.security.break_glass import ReasonRefused, break_glass_grant
from careloop.security.models import AuditEvent, AuditReason, BreakGlassGrant, Role, User
from tests.security.clinic import Clinic, make_clinic, staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

REASON = "Patient unconscious in the ED, Dr Okafor unreachable"
T0 = datetime.datetime(2025, 6, 11, 14, 0, tzinfo=datetime.UTC)


@pytest.fixture
def clinic() -> Clinic:
    return make_clinic()


@pytest.fixture
def chen_user(clinic: Clinic) -> User:
    return staff_user(Role.CLINICIAN, "dr-chen", provider=clinic.chen)


def signed_in(user: User) -> Client:
    # A fresh verified session at the current (possibly frozen) time, so that jumping
    # the clock an hour ahead tests the grant and not the session's idle timeout.
    return force_verified_login(Client(), user)


def page(user: User, patient_id: uuid.UUID) -> tuple[int, str]:
    response = signed_in(user).get(f"/patients/{patient_id}/", secure=True)
    return response.status_code, response.content.decode()


def break_glass(user: User, patient_id: uuid.UUID, reason: str) -> tuple[int, str]:
    response = signed_in(user).post(
        f"/emergency-access/{patient_id}/", {"reason": reason}, secure=True
    )
    return response.status_code, response.get("Location", "")


def without_ids(html: str) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'nonce="[^"]+"', "", html)
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", html)


def test_an_out_of_scope_patient_offers_emergency_access_and_nothing_else(
    chen_user: User, clinic: Clinic
) -> None:
    status, html = page(chen_user, clinic.ben.id)
    assert status == 404
    assert "This record is outside your care team" in html
    assert f'action="/emergency-access/{clinic.ben.id}/"' in html
    for detail in ("Ben", "Brooks", "1971", "Okafor", "Lakeside"):
        assert detail not in html


def test_the_offer_looks_the_same_for_a_patient_that_does_not_exist(
    chen_user: User, clinic: Clinic
) -> None:
    out_of_scope = page(chen_user, clinic.ben.id)
    missing = page(chen_user, uuid.uuid4())
    assert out_of_scope[0] == missing[0] == 404
    assert without_ids(out_of_scope[1]) == without_ids(missing[1])


def test_front_desk_gets_a_plain_404_not_an_offer(client: Client) -> None:
    force_verified_login(client, staff_user(Role.FRONT_DESK))
    response = client.get(f"/patients/{uuid.uuid4()}/", secure=True)
    assert response.status_code == 404
    assert "outside your care team" not in response.content.decode()


def test_a_short_reason_is_refused_and_grants_nothing(chen_user: User, clinic: Clinic) -> None:
    response = signed_in(chen_user).post(
        f"/emergency-access/{clinic.ben.id}/", {"reason": "emergency"}, secure=True
    )
    assert response.status_code == 200
    assert "at least 15 characters" in response.content.decode()
    assert not BreakGlassGrant.objects.exists()
    assert not AuditEvent.objects.filter(action="access.break_glass").exists()
    assert page(chen_user, clinic.ben.id)[0] == 404


def test_the_service_refuses_a_reason_of_padding() -> None:
    with pytest.raises(ReasonRefused):
        break_glass_grant(
            actor=staff_user(Role.CLINICIAN), patient_id=uuid.uuid4(), reason="  a   b  " * 3
        )


def test_a_reason_opens_the_patient_for_sixty_minutes(chen_user: User, clinic: Clinic) -> None:
    with clock.frozen(T0):
        status, location = break_glass(chen_user, clinic.ben.id, REASON)
        assert (status, location) == (302, f"/patients/{clinic.ben.id}/")
        status, html = page(chen_user, clinic.ben.id)
        assert status == 200
        assert "Ben Brooks" in html
    with clock.frozen(T0 + datetime.timedelta(minutes=59)):
        assert page(chen_user, clinic.ben.id)[0] == 200
    with clock.frozen(T0 + datetime.timedelta(minutes=60)):
        assert page(chen_user, clinic.ben.id)[0] == 404
    grant = BreakGlassGrant.objects.get()
    assert grant.expires_at - grant.granted_at == datetime.timedelta(minutes=60)


def test_a_grant_opens_one_patient_for_one_user(chen_user: User, clinic: Clinic) -> None:
    with clock.frozen(T0):
        break_glass(chen_user, clinic.ben.id, REASON)
        assert page(chen_user, clinic.cleo.id)[0] == 404
        colleague = staff_user(Role.CLINICIAN, "dr-other", provider=clinic.chen)
        assert page(colleague, clinic.ben.id)[0] == 404


def test_break_glass_is_audited_with_the_reason_stored_only_encrypted(
    chen_user: User, clinic: Clinic
) -> None:
    with clock.frozen(T0):
        break_glass(chen_user, clinic.ben.id, REASON)
    event = AuditEvent.objects.get(action="access.break_glass")
    grant = BreakGlassGrant.objects.get()
    assert event.outcome == "success"
    assert event.patient_id == clinic.ben.id
    assert event.actor_label == "dr-chen"
    assert event.resource_id == str(grant.id)
    assert AuditReason.objects.get(event=event).text == REASON
    assert grant.reason == REASON
    with connection.cursor() as cursor:
        for table, column in (
            ("security_auditreason", "text"),
            ("security_breakglassgrant", "reason"),
        ):
            cursor.execute(f"SELECT {column} FROM {table}")  # noqa: S608 - fixed names
            stored = b"".join(bytes(row[0]) for row in cursor.fetchall())
            assert stored
            assert b"unconscious" not in stored
            assert REASON.encode() not in stored


def test_a_reason_for_an_id_that_names_no_patient_is_audited_and_answers_404(
    chen_user: User,
) -> None:
    missing = uuid.uuid4()
    status, _ = break_glass(chen_user, missing, REASON)
    assert status == 404
    assert not BreakGlassGrant.objects.exists()
    event = AuditEvent.objects.get(action="access.break_glass")
    assert (event.outcome, event.patient_id) == ("failure", missing)


def test_roles_without_clinical_access_may_not_break_the_glass(clinic: Clinic) -> None:
    front_desk = staff_user(Role.FRONT_DESK)
    assert break_glass(front_desk, clinic.ben.id, REASON)[0] == 403
    with pytest.raises(PermissionDenied):
        break_glass_grant(actor=front_desk, patient_id=clinic.ben.id, reason=REASON)
    assert not BreakGlassGrant.objects.exists()
    assert AuditEvent.objects.filter(action="access.denied", patient_id=clinic.ben.id).exists()


def test_the_auditor_report_lists_grants_with_their_reasons(
    chen_user: User, clinic: Clinic
) -> None:
    with clock.frozen(T0):
        break_glass(chen_user, clinic.ben.id, REASON)
    auditor = staff_user(Role.AUDITOR)
    response = signed_in(auditor).get("/emergency-access/", secure=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "dr-chen" in html
    assert str(clinic.ben.id) in html
    assert REASON in html
    assert "Brooks" not in html  # the auditor reads the log, not the patient directory
    assert AuditEvent.objects.filter(
        action="audit.search", resource_type="break_glass_grant", actor_label=auditor.username
    ).exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.CLINICIAN, Role.CARE_COORDINATOR])
def test_only_the_auditor_reads_the_report(role: str) -> None:
    assert signed_in(staff_user(role)).get("/emergency-access/", secure=True).status_code == 403
