"""The staff shell's sign-in and patient pages, through HTTP with Django's test client."""

from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass

import pytest
from django.test import Client

from careloop.patients.models import LifecycleStage, Patient, Sex
from careloop.scheduling.models import Provider
from careloop.security.models import Role, User
from tests.patients.builders import (
    PASSWORD,
    add_appointment,
    add_contact,
    add_coverage,
    add_fact,
    add_mrn,
    make_location,
    make_patient,
    make_provider,
    make_user,
)
from tests.security.personas import force_verified_login, sign_in

pytestmark = pytest.mark.django_db

GENERIC_FAILURE = "That username and password did not match"


def get(client: Client, url: str, **extra: str) -> object:
    return client.get(url, secure=True, **extra)  # type: ignore[arg-type]


def search(client: Client, q: str, page: int | None = None, *, htmx: bool = False) -> str:
    data: dict[str, object] = {"q": q}
    if page is not None:
        data["page"] = page
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.post("/patients/", data, secure=True, headers=headers)
    assert response.status_code == 200
    return response.content.decode()


def listed_names(html: str) -> list[str]:
    """The "Family, Given" names in the result table, in order."""
    return re.findall(r'<a href="/patients/[0-9a-f-]+/">([^<]+)</a>', html)


@dataclass
class Practice:
    provider: Provider
    ana: Patient
    jose: Patient
    mei: Patient


@pytest.fixture
def practice() -> Practice:
    location = make_location()
    provider = make_provider(location)
    ana = make_patient(
        "Ana",
        "García",
        datetime.date(1962, 3, 14),
        preferred_name="Annie",
        sex=Sex.FEMALE,
        gender_identity="Woman",
        preferred_language="es",
        address_line="12 Elm Street",
        city="Springfield",
        postal_code="62704",
        state="IL",
        time_zone="America/Chicago",
        lifecycle_stage=LifecycleStage.CHRONIC,
        lifecycle_reason="Type 2 diabetes follow-up",
        primary_provider=provider,
        home_location=location,
    )
    add_contact(ana, "phone", "+1 (217) 555-0142", can_sms=True)
    add_contact(ana, "email", "Ana.Garcia@Example.org", use="home", can_email=True)
    add_mrn(ana, "RB-004521")
    add_coverage(
        ana,
        payer_category="medicare",
        payer_name="Medicare Part B",
        member_id="1EG4-TE5-MK73",
        period_start=datetime.date(2027, 1, 1),
    )
    add_fact(ana, "condition", "44054006")
    add_fact(ana, "observation", "4548-4")
    add_fact(ana, "observation", "4548-4")
    jose = make_patient("José", "Rivera", datetime.date(1990, 7, 4), sex=Sex.MALE)
    add_contact(jose, "phone", "217-555-0199")
    mei = make_patient("Mei", "Rivera", datetime.date(1962, 3, 14), sex=Sex.FEMALE)
    return Practice(provider=provider, ana=ana, jose=jose, mei=mei)


@pytest.fixture
def clinician() -> User:
    return make_user(Role.CLINICIAN)


@pytest.fixture
def staff(client: Client) -> Client:
    # A care coordinator reads every part of the patient page for the whole practice
    # (a clinician is limited to her care team: tests/security/test_permissions_scope.py).
    force_verified_login(client, make_user(Role.CARE_COORDINATOR))
    return client


# --- signing in and out ---------------------------------------------------------------


def test_login_with_the_right_password_and_code_lands_on_home(
    client: Client, clinician: User
) -> None:
    # Password, then TOTP: tests/security/test_auth.py covers each step.
    response = sign_in(client, clinician)
    assert response.status_code == 302
    assert response["Location"] == "/"
    home = client.get("/", secure=True)
    assert home.status_code == 200
    assert "Today at a glance" in home.content.decode()


@pytest.mark.parametrize("username", ["clinician-user", "nobody-by-that-name"])
def test_failed_login_says_the_same_thing_for_a_wrong_password_and_an_unknown_user(
    client: Client, clinician: User, username: str
) -> None:
    response = client.post(
        "/accounts/login/", {"username": username, "password": "not the password"}, secure=True
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert GENERIC_FAILURE in html
    assert "inactive" not in html
    assert "_auth_user_id" not in client.session


def test_inactive_account_gets_the_same_generic_message(client: Client) -> None:
    user = make_user(Role.FRONT_DESK, is_active=False)
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": PASSWORD}, secure=True
    )
    assert GENERIC_FAILURE in response.content.decode()


def test_logout_is_a_post_and_ends_the_session(staff: Client) -> None:
    assert staff.get("/accounts/logout/", secure=True).status_code == 405
    response = staff.post("/accounts/logout/", secure=True)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert staff.get("/", secure=True).status_code == 302


def test_signed_in_pages_show_user_role_and_a_logout_form(staff: Client) -> None:
    html = staff.get("/", secure=True).content.decode()
    assert "care_coordinator-user" in html
    assert "Care coordinator" in html
    assert re.search(r'<form method="post" action="/accounts/logout/"', html)


# --- who may see what -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/patients/", "/patients/7d1c2a4e-2f0b-4c55-9b7e-3f1f0c9b2d11/"]
)
def test_anonymous_visitor_is_sent_to_login(client: Client, path: str) -> None:
    response = client.get(path, secure=True)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_anonymous_search_post_is_sent_to_login(client: Client) -> None:
    response = client.post("/patients/", {"q": "garcia"}, secure=True)
    assert response.status_code == 302


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ANALYST, Role.MARKETING])
def test_roles_without_the_patient_directory_are_refused_patient_pages(
    client: Client, practice: Practice, role: str
) -> None:
    force_verified_login(client, make_user(role))
    for response in (
        client.get("/patients/", secure=True),
        client.post("/patients/", {"q": "garcia"}, secure=True),
        client.get(f"/patients/{practice.ana.id}/", secure=True),
    ):
        assert response.status_code == 403
        assert "Your role doesn" in response.content.decode()
        assert "García" not in response.content.decode()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FRONT_DESK, Role.CARE_COORDINATOR])
def test_patient_facing_staff_roles_may_open_patient_pages(
    client: Client, practice: Practice, role: str
) -> None:
    force_verified_login(client, make_user(role))
    assert client.get("/patients/", secure=True).status_code == 200
    assert client.get(f"/patients/{practice.ana.id}/", secure=True).status_code == 200


def test_a_clinician_may_open_the_patient_pages_of_her_care_team(
    client: Client, practice: Practice
) -> None:
    force_verified_login(client, make_user(Role.CLINICIAN, provider=practice.provider))
    assert client.get("/patients/", secure=True).status_code == 200
    assert client.get(f"/patients/{practice.ana.id}/", secure=True).status_code == 200


def test_a_patient_account_may_not_use_staff_pages(client: Client, practice: Practice) -> None:
    force_verified_login(client, make_user(Role.PATIENT))
    for path in ("/", "/patients/", f"/patients/{practice.ana.id}/"):
        response = client.get(path, secure=True)
        assert response.status_code == 403
        assert "Traceback" not in response.content.decode()


def test_nav_hides_patients_from_roles_that_may_not_see_them(client: Client) -> None:
    force_verified_login(client, make_user(Role.AUDITOR))
    html = client.get("/", secure=True).content.decode()
    assert 'href="/patients/"' not in html
    assert "does not include the practice" in html


# --- search -------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["garcia", "GARCÍA", "  García ", "Garcia"])
def test_search_by_family_name_ignores_case_and_accents(
    staff: Client, practice: Practice, q: str
) -> None:
    assert listed_names(search(staff, q)) == ["García, Ana"]


def test_search_by_one_shared_family_name_lists_every_match(
    staff: Client, practice: Practice
) -> None:
    assert listed_names(search(staff, "rivera")) == ["Rivera, Mei", "Rivera, José"]


@pytest.mark.parametrize("q", ["jose rivera", "Rivera José", "rivera, jose"])
def test_search_by_given_and_family_name_in_either_order(
    staff: Client, practice: Practice, q: str
) -> None:
    assert listed_names(search(staff, q)) == ["Rivera, José"]


def test_search_by_given_name_alone(staff: Client, practice: Practice) -> None:
    assert listed_names(search(staff, "mei")) == ["Rivera, Mei"]


def test_part_of_a_name_does_not_match(staff: Client, practice: Practice) -> None:
    html = search(staff, "Riv")
    assert listed_names(html) == []
    assert "No patients match" in html


@pytest.mark.parametrize("q", ["1962-03-14", "03/14/1962", "3/14/1962"])
def test_search_by_date_of_birth(staff: Client, practice: Practice, q: str) -> None:
    assert listed_names(search(staff, q)) == ["Rivera, Mei", "García, Ana"]


def test_impossible_date_finds_nothing(staff: Client, practice: Practice) -> None:
    assert listed_names(search(staff, "1962-02-30")) == []


@pytest.mark.parametrize("q", ["2175550142", "(217) 555-0142", "217.555.0142", "+12175550142"])
def test_search_by_phone_in_another_format(staff: Client, practice: Practice, q: str) -> None:
    assert listed_names(search(staff, q)) == ["García, Ana"]


def test_search_by_email_in_another_case(staff: Client, practice: Practice) -> None:
    assert listed_names(search(staff, "ana.garcia@example.ORG")) == ["García, Ana"]


@pytest.mark.parametrize("q", ["RB-004521", "rb-004521"])
def test_search_by_mrn(staff: Client, practice: Practice, q: str) -> None:
    assert listed_names(search(staff, q)) == ["García, Ana"]


def test_search_by_numeric_mrn(staff: Client, practice: Practice) -> None:
    add_mrn(practice.jose, "00457812")
    assert listed_names(search(staff, "00457812")) == ["Rivera, José"]


def test_htmx_search_answers_with_the_results_fragment_only(
    staff: Client, practice: Practice
) -> None:
    html = search(staff, "garcia", htmx=True)
    assert "<html" not in html
    assert listed_names(html) == ["García, Ana"]


def test_search_without_javascript_renders_the_whole_page(
    staff: Client, practice: Practice
) -> None:
    html = search(staff, "garcia")
    assert "<html" in html
    assert 'value="garcia"' in html


def test_empty_search_lists_everyone_newest_first(staff: Client, practice: Practice) -> None:
    response = staff.get("/patients/", secure=True)
    names = listed_names(response.content.decode())
    assert names == ["Rivera, Mei", "Rivera, José", "García, Ana"]


def test_list_shows_birth_date_age_sex_stage_and_provider(
    staff: Client, practice: Practice
) -> None:
    html = search(staff, "garcia")
    row = html[html.index("García, Ana") :]
    row = row[: row.index("</tr>")]
    for text in ("03/14/1962", "Female", "Chronic care", "Dr. Maya Chen"):
        assert text in row
    assert re.search(r'<td class="num">\d{2}</td>', row)


# --- paging ------------------------------------------------------------------------------


@pytest.fixture
def crowd(practice: Practice) -> None:
    # 30 Smiths plus the 3 patients of `practice`: 33 in all, two pages.
    for n in range(30):
        make_patient(f"Pat{n:02d}", "Smith", datetime.date(1980, 1, 1 + n % 28))


def test_list_pages_by_25(staff: Client, crowd: None) -> None:
    first = staff.get("/patients/", secure=True).content.decode()
    second = staff.get("/patients/?page=2", secure=True).content.decode()
    assert len(listed_names(first)) == 25
    assert len(listed_names(second)) == 8
    assert "Page 1 of 2" in first
    assert "Page 2 of 2" in second
    assert not set(listed_names(first)) & set(listed_names(second))


def test_search_results_page_too(staff: Client, crowd: None) -> None:
    first = listed_names(search(staff, "smith"))
    second = listed_names(search(staff, "smith", page=2))
    assert len(first) == 25
    assert len(second) == 5
    assert len(set(first + second)) == 30


def test_a_page_past_the_end_shows_the_last_page(staff: Client, crowd: None) -> None:
    html = staff.get("/patients/?page=99", secure=True).content.decode()
    assert "Page 2 of 2" in html


def test_list_runs_a_fixed_number_of_queries(
    staff: Client, crowd: None, django_assert_max_num_queries: object
) -> None:
    staff.get("/patients/", secure=True)  # the first audit event also creates the chain head
    # The page itself, plus the audit event (chain head lock, insert, head advance).
    with django_assert_max_num_queries(9):  # type: ignore[operator]
        staff.get("/patients/", secure=True)


def test_search_term_never_appears_in_a_url(staff: Client, practice: Practice) -> None:
    html = search(staff, "garcia")
    for url in re.findall(r'(?:href|action|hx-post|hx-get)="([^"]*)"', html):
        assert "garcia" not in url.lower()


# --- the patient page -----------------------------------------------------------------


def test_patient_page_shows_decrypted_demographics(staff: Client, practice: Practice) -> None:
    response = staff.get(f"/patients/{practice.ana.id}/", secure=True)
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Ana García",
        "Annie",
        "03/14/1962",
        "Female",
        "Woman",
        "Spanish (es)",
        "12 Elm Street",
        "Springfield",
        "62704",
        "America/Chicago",
        "Chronic care",
        "Type 2 diabetes follow-up",
        "+1 (217) 555-0142",
        "Ana.Garcia@Example.org",
        "RB-004521",
        "Medicare Part B",
        "1EG4-TE5-MK73",
        "Dr. Maya Chen",
        "Riverbend Main Clinic",
    ):
        assert text in html, text
    assert re.search(r'data-kind="observation"><strong>2</strong> observations', html)
    assert re.search(r'data-kind="condition"><strong>1</strong> condition<', html)


def test_patient_page_lists_upcoming_and_recent_appointments(
    staff: Client, practice: Practice
) -> None:
    now = datetime.datetime.now(tz=datetime.UTC)
    add_appointment(practice.ana, practice.provider, now + datetime.timedelta(days=3))
    add_appointment(practice.ana, practice.provider, now - datetime.timedelta(days=20), "noshow")
    html = staff.get(f"/patients/{practice.ana.id}/", secure=True).content.decode()
    upcoming = html[html.index("<h3>Upcoming</h3>") : html.index("<h3>Recent</h3>")]
    recent = html[html.index("<h3>Recent</h3>") :]
    assert "Booked" in upcoming
    assert "No-show" in recent


def test_unknown_patient_is_a_404_page(staff: Client, practice: Practice) -> None:
    response = staff.get(f"/patients/{uuid.uuid4()}/", secure=True)
    assert response.status_code == 404
    html = response.content.decode()
    assert "couldn" in html
    assert "app.css" in html


def test_malformed_patient_id_is_a_404_page(staff: Client) -> None:
    assert staff.get("/patients/not-a-uuid/", secure=True).status_code == 404


# --- static assets ------------------------------------------------------------------------


def test_static_assets_are_served_with_debug_off_and_cached(client: Client) -> None:
    response = client.get("/static/careloop/app.css?v=abc", secure=True)
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert b"".join(response.streaming_content).startswith(b"/* careloop")  # type: ignore[attr-defined]
    htmx = client.get("/static/careloop/vendor/htmx.min.js", secure=True)
    assert htmx.status_code == 200
    assert "max-age" in htmx["Cache-Control"]


def test_pages_reference_no_third_party_assets_and_no_inline_script_or_style(
    staff: Client, practice: Practice
) -> None:
    for path in ("/", "/patients/", f"/patients/{practice.ana.id}/", "/accounts/logout/"):
        html = staff.get(path, secure=True).content.decode()
        assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
        assert "<script>" not in html
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert "style=" not in html


def test_server_error_page_renders_without_any_context() -> None:
    # Django renders 500.html with no request and no context at all.
    from django.template import loader

    html = loader.get_template("500.html").render()
    assert "Something went wrong" in html
    assert "/static/careloop/app.css?v=" in html
