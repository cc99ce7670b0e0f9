"""Integration → Quarantine and Match reviews, through HTTP as each persona."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.test import Client

from careloop.ehr.identity import IncomingPatient, patient_upsert
from careloop.ehr.ingest import import_paths
from careloop.ehr.models import MatchReview, MatchStatus, QuarantineItem, QuarantineStatus
from careloop.patients.models import Patient
from careloop.scheduling.models import Appointment
from careloop.security.models import AuditEvent, Role, User
from tests.ehr.feed import make_source
from tests.ehr.test_records import APPOINTMENT, LOCATION, SYNTHEA_PATIENT, SYNTHEA_PRACTITIONER
from tests.patients.builders import make_patient
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

SECRET = "Zebulon-Quarantined-Value"
QUARANTINE = "/integration/quarantine/"
MATCHES = "/integration/matches/"


def signed_in(role: str) -> tuple[Client, User]:
    user = staff_user(role, f"{role}-ehr")
    return force_verified_login(Client(), user), user


def ndjson(path: Path, *resources: dict[str, Any] | bytes) -> Path:
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in resources]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def broken_line(tmp_path: Path) -> QuarantineItem:
    """An import whose second line is not JSON (and holds something nobody may read)."""
    import_paths([ndjson(tmp_path / "Patient.ndjson", SYNTHEA_PATIENT, f"{{{SECRET}".encode())])
    return QuarantineItem.objects.get()


def html(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return str(response.content.decode())


def test_the_list_shows_where_and_why_but_never_the_payload(broken_line: QuarantineItem) -> None:
    admin, _ = signed_in(Role.ADMIN)
    page = html(admin.get(QUARANTINE, secure=True))
    assert "Patient.ndjson" in page and broken_line.reason in page
    assert SECRET not in page


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.CLINICIAN, Role.MARKETING])
def test_roles_outside_the_integration_row_are_refused(
    broken_line: QuarantineItem, role: str
) -> None:
    client, _ = signed_in(role)
    assert client.get(QUARANTINE, secure=True).status_code == 403
    assert client.get(f"{QUARANTINE}{broken_line.pk}/", secure=True).status_code == 403


def test_the_admin_runs_the_feed_but_does_not_see_payloads(broken_line: QuarantineItem) -> None:
    admin, _ = signed_in(Role.ADMIN)
    page = html(admin.get(f"{QUARANTINE}{broken_line.pk}/?payload=1", secure=True))
    assert SECRET not in page and "does not see quarantined payloads" in page
    assert not AuditEvent.objects.filter(action="ehr.quarantine_view").exists()


def test_a_coordinator_sees_a_payload_only_when_asked_and_it_is_audited(
    broken_line: QuarantineItem,
) -> None:
    coordinator, user = signed_in(Role.CARE_COORDINATOR)
    url = f"{QUARANTINE}{broken_line.pk}/"
    assert SECRET not in html(coordinator.get(url, secure=True))
    assert not AuditEvent.objects.filter(action="ehr.quarantine_view").exists()
    assert SECRET in html(coordinator.get(f"{url}?payload=1", secure=True))
    event = AuditEvent.objects.get(action="ehr.quarantine_view")
    assert (event.actor_id, event.resource_id) == (str(user.pk), str(broken_line.pk))
    # She may look but not act.
    dismissed = coordinator.post(f"{url}dismiss/", {"reason": "duplicate"}, secure=True)
    assert dismissed.status_code == 403


def test_a_dismissal_needs_a_reason_and_is_audited(broken_line: QuarantineItem) -> None:
    admin, user = signed_in(Role.ADMIN)
    url = f"{QUARANTINE}{broken_line.pk}/dismiss/"
    admin.post(url, {"reason": "  "}, secure=True)
    broken_line.refresh_from_db()
    assert broken_line.status == QuarantineStatus.OPEN
    response = admin.post(url, {"reason": "the EHR resent it correctly"}, secure=True)
    assert response.status_code == 302
    broken_line.refresh_from_db()
    assert (broken_line.status, broken_line.resolved_by_id) == (QuarantineStatus.DISMISSED, user.pk)
    assert AuditEvent.objects.filter(
        action="ehr.quarantine_resolve", actor_id=str(user.pk)
    ).exists()
    # Closed items leave the default (open) list and show under "any status".
    assert "Patient.ndjson" not in html(admin.get(QUARANTINE, secure=True))
    assert "Patient.ndjson" in html(admin.get(f"{QUARANTINE}?status=any", secure=True))


def test_an_item_rejected_for_a_missing_provider_is_reprocessed_once_it_arrives(
    tmp_path: Path,
) -> None:
    first = ndjson(tmp_path / "first.ndjson", SYNTHEA_PATIENT, LOCATION, APPOINTMENT)
    import_paths([first], source_name="hospital")
    item = QuarantineItem.objects.get(resource_type="Appointment")
    assert "practitioner" in item.reason and not Appointment.objects.exists()
    import_paths([ndjson(tmp_path / "later.ndjson", SYNTHEA_PRACTITIONER)], source_name="hospital")
    admin, user = signed_in(Role.ADMIN)
    response = admin.post(f"{QUARANTINE}reprocess/", {"items": [str(item.pk)]}, secure=True)
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.status, item.resolved_by_id) == (QuarantineStatus.REPROCESSED, user.pk)
    assert Appointment.objects.get().source == "ehr"
    assert AuditEvent.objects.filter(
        action="ehr.quarantine_resolve", fields=["reprocessed"]
    ).exists()


def ana(given: str = "Ana") -> IncomingPatient:
    return IncomingPatient(given_name=given, family_name="Rivera", birth_date=BORN)


BORN = datetime.date(1958, 3, 14)


@pytest.fixture
def review() -> MatchReview:
    make_patient("Ana", "Rivera", BORN)
    patient_upsert(source=make_source(), source_patient_id="p-1", incoming=ana())
    return MatchReview.objects.get()


def test_the_review_list_names_nobody_and_the_review_page_is_audited(review: MatchReview) -> None:
    desk, user = signed_in(Role.FRONT_DESK)
    listing = html(desk.get(MATCHES, secure=True))
    assert review.reason in listing and "Rivera" not in listing
    assert not AuditEvent.objects.filter(action="ehr.match_view").exists()
    page = html(desk.get(f"{MATCHES}{review.pk}/", secure=True))
    assert page.count("Rivera") >= 2
    viewed = AuditEvent.objects.filter(action="ehr.match_view", actor_id=str(user.pk))
    assert {e.patient_id for e in viewed} == {review.incoming_id, review.candidate_id}


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.MARKETING, Role.ANALYST])
def test_roles_that_may_not_write_demographics_cannot_review(
    review: MatchReview, role: str
) -> None:
    client, _ = signed_in(role)
    assert client.get(f"{MATCHES}{review.pk}/", secure=True).status_code == 403
    assert (
        client.post(f"{MATCHES}{review.pk}/", {"decision": "merge"}, secure=True).status_code == 403
    )
    review.refresh_from_db()
    assert review.status == MatchStatus.OPEN


def test_different_people_are_kept_apart(review: MatchReview) -> None:
    desk, user = signed_in(Role.FRONT_DESK)
    response = desk.post(f"{MATCHES}{review.pk}/", {"decision": "distinct"}, secure=True)
    assert response.status_code == 302
    review.refresh_from_db()
    assert (review.status, review.decided_by_id) == (MatchStatus.DISTINCT, user.pk)
    assert Patient.objects.filter(merged_into__isnull=True).count() == 2
    assert AuditEvent.objects.filter(action="ehr.match_decide").count() == 2
    # A decision is made once.
    again = desk.post(f"{MATCHES}{review.pk}/", {"decision": "merge"}, secure=True)
    assert "already decided" in html(again)


def test_a_merge_folds_the_new_record_in_and_the_feed_follows(review: MatchReview) -> None:
    coordinator, _ = signed_in(Role.CARE_COORDINATOR)
    coordinator.post(f"{MATCHES}{review.pk}/", {"decision": "merge"}, secure=True)
    review.refresh_from_db()
    assert review.status == MatchStatus.MERGED
    incoming = Patient.objects.get(pk=review.incoming_id)
    assert incoming.merged_into_id == review.candidate_id
    # The EHR's next message about its patient lands on the record careloop kept.
    later = patient_upsert(source=review.source, source_patient_id="p-1", incoming=ana())
    assert later.patient_id == review.candidate_id


def test_a_decision_without_a_choice_shows_the_form_again(review: MatchReview) -> None:
    admin, _ = signed_in(Role.ADMIN)
    page = html(admin.post(f"{MATCHES}{review.pk}/", {}, secure=True))
    assert "Are they the same person?" in page
    review.refresh_from_db()
    assert review.status == MatchStatus.OPEN
