"""The care-gap recall worklist over HTTP: the measures overview, filters, sorting,
paging, the CSV export, who is refused, what is audited, bad input; and the gap cards
on the patient page.

The practice is imported through the real FHIR ingest and evaluated for CMS125
(breast cancer screening) in 2026 as of 2026-12-01:

| source id | CMS125 | besides |
| --- | --- | --- |
| met | met until 2027-07-02 | Dr Chen, Main Street; coordinated by the coordinator |
| soon | due soon (2027-01-20) | Dr Chen, Main Street; coordinated by the coordinator |
| hospice | excluded (hospice) | |
| never00-never26 | overdue, never screened | born 1955 + n (ages 71 down to 45) |

never00-never04 are Dr Chen's at Main Street too; never01 asked not to be contacted;
never02 was e-mailed 10 days ago and never03 100 days ago; never04 has a visit booked.
"""

from __future__ import annotations

import csv
import datetime
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from careloop.caregaps.evaluate import Period, measure_evaluate
from careloop.consent.models import CaptureMethod, Channel, ContentClass, Purpose
from careloop.consent.preferences import Preferences, preferences_update
from careloop.core import clock
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.patients.care_team import patient_care_team_set
from careloop.patients.models import Patient
from careloop.security.auth.signin import REAUTH_AT
from careloop.security.models import AuditEvent, Role, User
from tests.caregaps.fhir_resources import (
    HOSPICE_ENCOUNTER,
    OFFICE_VISIT,
    encounter,
    import_resources,
    mammogram,
    patient,
    patient_ids,
)
from tests.caregaps.gaps_practice import AS_OF
from tests.patients.builders import (
    add_appointment,
    add_contact,
    make_location,
    make_provider,
    make_user,
)
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

# Midday in the practice's zone on the as-of day: ages and "today" are fixed.
NOW = datetime.datetime(2026, 12, 1, 18, 0, tzinfo=datetime.UTC)
NEVER = 27
TOTAL = NEVER + 3


def _resources() -> list[dict[str, Any]]:
    visit = "2026-03-10"
    items = [
        patient("met", "1970-05-01", family="Marsh"),
        encounter("met", "e-met", visit, OFFICE_VISIT),
        mammogram("met", "m-met", "2025-04-02"),
        patient("soon", "1970-05-01", family="Sutton"),
        encounter("soon", "e-soon", visit, OFFICE_VISIT),
        mammogram("soon", "m-soon", "2024-10-20"),
        patient("hospice", "1970-05-01", family="Hale"),
        encounter("hospice", "e-hospice", visit, OFFICE_VISIT),
        encounter("hospice", "e-hospice2", "2026-06-01", HOSPICE_ENCOUNTER),
    ]
    for n in range(NEVER):
        pid = f"never{n:02d}"
        items.append(patient(pid, f"{1955 + n}-03-01", family=f"Rowe{n:02d}"))
        items.append(encounter(pid, f"e-{pid}", visit, OFFICE_VISIT))
    return items


@dataclass(frozen=True)
class Practice:
    ids: dict[str, uuid.UUID]
    coordinator: User
    provider_id: uuid.UUID
    location_id: uuid.UUID

    def patient(self, source_id: str) -> Patient:
        return Patient.objects.get(pk=self.ids[source_id])


def build_practice(folder: Path, *, coordinator: User) -> Practice:
    """The practice above, through the ingest and the services; CMS125 evaluated."""
    import_resources(folder, _resources())
    ids = patient_ids()
    main = make_location("Main Street Clinic")
    chen = make_provider(main, "Dr. Maya Chen")
    for pid in ("met", "soon", "never00", "never01", "never02", "never03", "never04"):
        patient_care_team_set(
            actor=coordinator,
            patient_id=ids[pid],
            primary_provider=chen,
            home_location=main,
            care_coordinator=coordinator if pid in ("met", "soon") else None,
        )
    preferences_update(
        actor=coordinator,
        patient=Patient.objects.get(pk=ids["never01"]),
        preferences=Preferences(
            channel_order=[], quiet_start=None, quiet_end=None, do_not_contact=True
        ),
        method=CaptureMethod.VERBAL,
    )
    for pid, days in (("never02", 10), ("never03", 100)):
        recipient = Patient.objects.get(pk=ids[pid])
        add_contact(recipient, "email", f"{pid}@example.org", verified=True, can_email=True)
        with clock.frozen(clock.now() - datetime.timedelta(days=days)):
            message_enqueue(
                patient=recipient,
                channel=Channel.EMAIL,
                purpose=Purpose.CARE_REMINDER,
                content_class=ContentClass.GENERIC,
                template_id="caregap-reminder",
                template_version=1,
                rendered=Rendered(body="Time for your screening.", subject="A reminder"),
            )
    add_appointment(
        Patient.objects.get(pk=ids["never04"]),
        chen,
        clock.now() + datetime.timedelta(days=9),
    )
    measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF)
    return Practice(ids=ids, coordinator=coordinator, provider_id=chen.pk, location_id=main.pk)


@pytest.fixture(autouse=True)
def _today() -> Iterator[None]:
    with clock.frozen(NOW):
        yield


@pytest.fixture
def practice(tmp_path: Path) -> Practice:
    coordinator = make_user(Role.CARE_COORDINATOR, "coord.lee")
    return build_practice(tmp_path / "fhir", coordinator=coordinator)


@pytest.fixture
def coordinator(client: Client, practice: Practice) -> Client:
    force_verified_login(client, practice.coordinator)
    return client


@pytest.fixture
def coordinator_alone(client: Client) -> Client:
    """A signed-in coordinator and no patients: for what needs no evaluated practice
    (the value sets an evaluation loads cost seconds a test)."""
    force_verified_login(client, make_user(Role.CARE_COORDINATOR, "coord.kim"))
    return client


def _get(client: Client, url: str, params: Any = None) -> Any:
    return client.get(url, params or {}, secure=True)


def _page(client: Client, params: Any = None, measure: str = "CMS125") -> Any:
    response = _get(client, f"/caregaps/{measure}/", params)
    assert response.status_code == 200, response.content.decode()[:2000]
    return response.context["page"]


def _source_ids(page: Any, practice: Practice) -> list[str]:
    by_id = {v: k for k, v in practice.ids.items()}
    return [by_id[row.patient_id] for row in page.rows]


# --- the overview ---------------------------------------------------------------------


def test_the_overview_counts_each_status_and_links_to_the_worklist(coordinator: Client) -> None:
    response = _get(coordinator, "/caregaps/")

    assert response.status_code == 200
    summary = next(s for s in response.context["summaries"] if s.measure.id == "CMS125")
    assert summary.groups[0].counts == {"overdue": NEVER, "due_soon": 1, "met": 1, "excluded": 1}
    assert b'href="/caregaps/CMS125/?status=overdue"' in response.content
    # Every registered measure is listed; one never evaluated says so.
    assert b"not evaluated" in response.content
    assert AuditEvent.objects.filter(action="patient.list", resource_type="MeasureRun").exists()


# --- filters ----------------------------------------------------------------------------


def test_status_due_window_team_and_age_filters(coordinator: Client, practice: Practice) -> None:
    assert _page(coordinator).total == TOTAL
    assert _page(coordinator, {"status": "overdue"}).total == NEVER
    both = _page(coordinator, {"status": ["met", "due_soon"]})
    assert sorted(row.status for row in both.rows) == ["due_soon", "met"]

    # Due by 2026-12-01 + 60 days: the never-screened (due now) and the due-soon one.
    within = _page(coordinator, {"due_within": "60"})
    assert within.total == NEVER + 1
    dated = _page(coordinator, {"due_from": "2027-01-01", "due_to": "2027-12-31"})
    assert sorted(_source_ids(dated, practice)) == ["met", "soon"]
    assert _page(coordinator, {"due_to": "2027-02-01"}).total == 1

    assert _page(coordinator, {"provider": str(practice.provider_id)}).total == 7
    assert _page(coordinator, {"location": str(practice.location_id)}).total == 7
    mine = _page(coordinator, {"mine": "on"})
    assert sorted(_source_ids(mine, practice)) == ["met", "soon"]

    # Born 1967-1976 among the never-screened (10) and the three born 1970-05-01.
    page = _page(coordinator, {"age_min": "50", "age_max": "59"})
    assert page.total == 13
    assert all(50 <= row.age <= 59 for row in page.rows)


def test_last_contact_consent_and_visit_filters(coordinator: Client, practice: Practice) -> None:
    never = _page(coordinator, {"never_contacted": "on"})
    assert never.total == TOTAL - 2
    quiet = _page(coordinator, {"no_contact_days": "30", "status": "overdue"})
    assert quiet.total == NEVER - 1
    assert "never02" not in _source_ids(quiet, practice)

    stopped = _page(coordinator, {"consent": "do_not_contact"})
    assert _source_ids(stopped, practice) == ["never01"]
    assert not stopped.rows[0].contact.allowed
    assert _page(coordinator, {"consent": "may_contact"}).total == TOTAL - 1
    unbooked = _page(coordinator, {"no_upcoming_visit": "on"})
    assert unbooked.total == TOTAL - 1
    assert "never04" not in _source_ids(unbooked, practice)


def test_rows_show_name_age_status_due_reason_last_contact_and_channels(
    coordinator: Client, practice: Practice
) -> None:
    page = _page(coordinator, {"status": "overdue", "provider": str(practice.provider_id)})
    rows = dict(zip(_source_ids(page, practice), page.rows, strict=True))

    emailed = rows["never02"]
    assert (emailed.family_name, emailed.given_name, emailed.age) == ("Rowe02", "Never02", 69)
    assert emailed.last_contact == NOW - datetime.timedelta(days=10)
    assert emailed.contact.channels == ["E-mail"]
    assert rows["never00"].last_contact is None
    assert rows["never00"].why.startswith("No screening mammogram")
    response = _get(coordinator, "/caregaps/CMS125/", {"status": "excluded"})
    assert b"Hale, Hospice" in response.content
    assert b"Excluded: hospice care" in response.content
    assert f'href="/patients/{practice.ids["hospice"]}/"'.encode() in response.content


# --- sorting and paging ----------------------------------------------------------------


def test_sorting_by_due_date_age_status_and_last_contact(
    coordinator: Client, practice: Practice
) -> None:
    ages = [row.age for row in _page(coordinator, {"sort": "age"}).rows]
    assert ages == sorted(ages)
    ages = [row.age for row in _page(coordinator, {"sort": "-age"}).rows]
    assert ages == sorted(ages, reverse=True) and ages[0] == 71

    assert _source_ids(_page(coordinator, {"sort": "-due"}), practice)[:2] == ["met", "soon"]
    by_due = _page(coordinator, {"sort": "due", "status": ["met", "due_soon"]})
    assert _source_ids(by_due, practice) == ["soon", "met"]

    statuses = [row.status for row in _page(coordinator, {"sort": "-status"}).rows]
    assert statuses[:3] == ["excluded", "met", "due_soon"]

    recent = _page(coordinator, {"sort": "-contact"})
    assert _source_ids(recent, practice)[:2] == ["never02", "never03"]
    oldest = _page(coordinator, {"sort": "contact", "status": "overdue", "page": "2"})
    assert _source_ids(oldest, practice) == ["never03", "never02"]


def test_pages_cover_every_row_once(coordinator: Client) -> None:
    first = _page(coordinator, {"status": "overdue"})
    second = _page(coordinator, {"status": "overdue", "page": "2"})

    assert (first.number, first.num_pages, len(first.rows), len(second.rows)) == (1, 2, 25, 2)
    ids = [row.patient_id for row in first.rows + second.rows]
    assert len(set(ids)) == NEVER
    # The pager keeps the filters.
    response = _get(coordinator, "/caregaps/CMS125/", {"status": "overdue"})
    assert b'href="?status=overdue&amp;page=2"' in response.content

    # Names are encrypted: not a sort key, and the page says so.
    response = _get(coordinator, "/caregaps/CMS125/")
    assert b"not sortable" in response.content
    assert _get(coordinator, "/caregaps/CMS125/", {"sort": "name"}).status_code == 400
    assert _page(coordinator, {"page": "abc"}).number == 1
    assert _page(coordinator, {"page": "999"}).number == 2


# --- the CSV export ------------------------------------------------------------------------


def _fresh_reauth(client: Client) -> None:
    session = client.session
    session[REAUTH_AT] = clock.now().timestamp()
    session.save()


def test_the_export_asks_for_the_password_again(coordinator_alone: Client) -> None:
    response = _get(coordinator_alone, "/caregaps/CMS125/export.csv", {"status": "overdue"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauth/")
    assert not AuditEvent.objects.filter(action="export.csv").exists()


def test_the_export_holds_every_filtered_row_in_order_and_is_audited(
    coordinator: Client, practice: Practice
) -> None:
    _fresh_reauth(coordinator)
    response = _get(
        coordinator, "/caregaps/CMS125/export.csv", {"status": "overdue", "sort": "-age"}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == NEVER
    assert [row["family_name"] for row in rows[:2]] == ["Rowe00", "Rowe01"]
    by_name = {row["family_name"]: row for row in rows}
    assert by_name["Rowe01"]["contact_allowed"] == "no"
    assert by_name["Rowe02"]["last_contact"].startswith("2026-11-21")
    assert by_name["Rowe05"] | {"patient_id": ""} == {
        "patient_id": "",
        "family_name": "Rowe05",
        "given_name": "Never05",
        "birth_date": "1960-03-01",
        "age": "66",
        "measure": "CMS125",
        "group": "1",
        "status": "overdue",
        "due_date": "",
        "reason": "",
        "last_contact": "",
        "contact_allowed": "yes",
    }
    event = AuditEvent.objects.get(action="export.csv")
    assert event.resource_id.startswith("CMS125:") and event.resource_id.endswith(":rows=27")
    assert "status=overdue" in event.fields
    assert "rowe" not in str(event.fields).lower()


# --- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.MARKETING, Role.ANALYST])
def test_roles_without_clinical_read_are_refused_and_the_refusal_is_audited(
    client: Client, role: Role
) -> None:
    force_verified_login(client, make_user(role, f"user-{role}"))
    for url in ("/caregaps/", "/caregaps/CMS125/", "/caregaps/CMS125/export.csv"):
        assert _get(client, url).status_code == 403, url
    denied = AuditEvent.objects.filter(action="access.denied", outcome="denied")
    assert sorted(denied.values_list("fields", flat=True)) == [["export"], ["read"], ["read"]]
    assert set(denied.values_list("resource_type", flat=True)) == {"clinical"}


def test_a_clinician_reads_her_patients_only_and_may_not_export(
    client: Client, practice: Practice
) -> None:
    clinician = make_user(Role.CLINICIAN, "dr.chen", provider_id=practice.provider_id)
    force_verified_login(client, clinician)

    assert _page(client).total == 7
    _fresh_reauth(client)
    assert _get(client, "/caregaps/CMS125/export.csv").status_code == 403


# --- audit, bad input, unknown measures ---------------------------------------------------


def test_a_worklist_page_is_audited_without_names(coordinator: Client) -> None:
    _page(coordinator, {"status": "overdue", "age_min": "50"})

    event = AuditEvent.objects.get(action="patient.list", resource_type="PatientMeasureResult")
    assert event.resource_id.endswith(":page=1:shown=22")
    assert {"name", "gap_status", "status=overdue", "age_min=50"} <= set(event.fields)
    assert event.actor_label == "coord.lee"
    assert "rowe" not in str(event.fields).lower() + event.resource_id.lower()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"due_from": "tomorrow"}, b"Enter a valid date"),
        (
            {"due_from": "2027-03-01", "due_to": "2027-01-01"},
            "“Due to” must be on or after".encode(),
        ),
        ({"age_min": "60", "age_max": "40"}, "“Age to” must be at least".encode()),
        ({"age_min": "-3"}, b"greater than or equal to 0"),
        ({"due_within": "soon"}, b"Enter a whole number"),
        ({"status": "lost"}, b"Select a valid choice"),
        ({"provider": "not-a-uuid"}, b"is not a valid UUID"),
        ({"sort": "family_name"}, b"Select a valid choice"),
        ({"group": "7"}, b"Select a valid choice"),
    ],
)
def test_bad_filter_input_is_a_form_error_not_a_crash(
    coordinator_alone: Client, params: dict[str, str], message: bytes
) -> None:
    response = _get(coordinator_alone, "/caregaps/CMS125/", params)

    assert response.status_code == 400
    assert message in response.content
    assert b"Some filters are not valid" in response.content
    _fresh_reauth(coordinator_alone)
    assert _get(coordinator_alone, "/caregaps/CMS125/export.csv", params).status_code == 400


def test_unknown_and_unevaluated_measures(coordinator_alone: Client) -> None:
    assert _get(coordinator_alone, "/caregaps/CMS999/").status_code == 404
    page = _page(coordinator_alone, measure="CMS130")
    assert page.run is None and page.total == 0
    assert b"no evaluation yet" in _get(coordinator_alone, "/caregaps/CMS130/").content


# --- gap cards -------------------------------------------------------------------------------


def test_the_patient_page_shows_gap_cards_with_why_what_closes_and_when(
    coordinator: Client, practice: Practice
) -> None:
    never = _get(coordinator, f"/patients/{practice.ids['never00']}/")
    assert never.status_code == 200
    assert b"Care gaps" in never.content
    assert b"Breast Cancer Screening" in never.content
    assert b"No screening mammogram in the last 27 months" in never.content
    assert b"A screening mammogram (every 2 years)" in never.content

    soon = _get(coordinator, f"/patients/{practice.ids['soon']}/").content
    assert b"Done, but due again by 2027-01-20" in soon
    hospice = _get(coordinator, f"/patients/{practice.ids['hospice']}/").content
    assert b"Excluded: hospice care" in hospice

    # One event per page that showed cards, each naming its patient.
    events = AuditEvent.objects.filter(action="patient.view", resource_type="PatientMeasureResult")
    assert events.count() == 3
    event = events.get(patient_id=practice.ids["never00"])
    assert "CMS125" in event.fields


def test_the_front_desk_sees_no_gap_cards(client: Client, practice: Practice) -> None:
    force_verified_login(client, make_user(Role.FRONT_DESK, "fd.ana"))

    page = _get(client, f"/patients/{practice.ids['never00']}/")

    assert page.status_code == 200
    assert b"Rowe00" in page.content and b"Care gaps" not in page.content
    assert not AuditEvent.objects.filter(resource_type="PatientMeasureResult").exists()


def test_the_filtered_list_joins_a_journey_once(coordinator: Client, practice: Practice) -> None:
    from careloop.outreach.models import Enrollment, Journey

    page = _get(coordinator, "/caregaps/CMS125/", {"status": "overdue"})
    assert b"Add to journey" in page.content
    url = "/caregaps/CMS125/enroll?status=overdue"
    done = coordinator.post(url, {"journey": "care-gap-recall", "batch": "b1"}, secure=True)
    assert done.status_code == 302
    assert f"enrolled={NEVER}" in done["Location"]
    journey = Journey.objects.get(key="care-gap-recall")
    assert Enrollment.objects.filter(journey=journey).count() == NEVER
    # The same action posted twice (a double click) enrols no one twice.
    again = coordinator.post(url, {"journey": "care-gap-recall", "batch": "b1"}, secure=True)
    assert "enrolled=0" in again["Location"]
    assert AuditEvent.objects.filter(action="journey.enroll").count() == 2


def test_the_front_desk_cannot_enrol_from_a_worklist(client: Client, practice: Practice) -> None:
    force_verified_login(client, make_user(Role.FRONT_DESK, "fd.bo"))
    refused = client.post("/caregaps/CMS125/enroll", {"journey": "care-gap-recall"}, secure=True)
    assert refused.status_code == 403
