"""Security headers on every response: HSTS, a nonce-based CSP, and the rest of the set.

Walks the pages a signed-in staff member and an anonymous visitor see, over HTTPS
(`secure=True`), and reads the headers and the HTML as a browser would get them.
"""

from __future__ import annotations

import datetime
import re

import pytest
from django.http import HttpResponse
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from careloop.patients.models import Patient
from careloop.security.models import Role, User
from tests.patients.builders import PASSWORD, make_patient, make_user

pytestmark = pytest.mark.django_db

EXPECTED_CSP = re.compile(
    r"^default-src 'self'; script-src 'self' 'nonce-(?P<nonce>[A-Za-z0-9_-]{22})'; "
    r"style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    r"base-uri 'none'; form-action 'self'; object-src 'none'$"
)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.I)
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def sign_in(client: Client, user: User) -> Client:
    """Signed in with both factors (password and TOTP), without going through the pages."""
    device = TOTPDevice.objects.create(user=user, name="test device", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def front_desk() -> User:
    return make_user(Role.FRONT_DESK, username="frontdesk")


@pytest.fixture
def patient() -> Patient:
    return make_patient("Ana", "García", datetime.date(1962, 3, 14))


@pytest.fixture
def staff(client: Client, front_desk: User) -> Client:
    return sign_in(client, front_desk)


def assert_security_headers(response: HttpResponse) -> str:
    """The headers every careloop response carries; returns the CSP nonce."""
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    match = EXPECTED_CSP.match(response["Content-Security-Policy"])
    assert match, response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    permissions = response["Permissions-Policy"]
    for feature in ("camera", "microphone", "geolocation"):
        assert f"{feature}=()" in permissions
    return match["nonce"]


def assert_no_inline_script_or_style(html: str, nonce: str) -> None:
    scripts = SCRIPT_TAG.findall(html)
    for attributes, body in scripts:
        assert "src=" in attributes, "inline <script> found"
        assert not body.strip(), "a <script src> tag with a body"
        assert f'nonce="{nonce}"' in attributes, "a <script> without this response's nonce"
    assert not INLINE_HANDLER.search(html), "an inline event handler (onclick=...) found"
    assert not STYLE_ATTRIBUTE.search(html), "an inline style attribute found"


def test_every_staff_page_carries_the_full_header_set_and_no_inline_script(
    staff: Client, patient: Patient
) -> None:
    pages = ["/", "/patients/", f"/patients/{patient.id}/"]
    for url in pages:
        response = staff.get(url, secure=True)
        assert response.status_code == 200, url
        nonce = assert_security_headers(response)
        assert response["Cache-Control"] == "no-store", url
        html = response.content.decode()
        assert "<script" in html, f"{url} loads no script (htmx expected)"
        assert_no_inline_script_or_style(html, nonce)


def test_anonymous_pages_and_error_pages_carry_the_headers_too(client: Client) -> None:
    for url, status in [
        ("/accounts/login/", 200),
        ("/healthz", 200),
        ("/", 302),
    ]:
        response = client.get(url, secure=True)
        assert response.status_code == status, url
        assert_security_headers(response)
        assert response["Cache-Control"] == "no-store", url
    login = client.get("/accounts/login/", secure=True)
    assert_no_inline_script_or_style(login.content.decode(), assert_security_headers(login))


def test_not_found_page_carries_the_headers(staff: Client) -> None:
    response = staff.get("/no-such-page/", secure=True)
    assert response.status_code == 404
    assert_security_headers(response)
    assert response["Cache-Control"] == "no-store"


def test_each_response_gets_a_fresh_nonce_that_matches_its_script_tags(staff: Client) -> None:
    first = staff.get("/patients/", secure=True)
    second = staff.get("/patients/", secure=True)
    nonces = {assert_security_headers(first), assert_security_headers(second)}
    assert len(nonces) == 2
    for response in (first, second):
        nonce = assert_security_headers(response)
        assert f'nonce="{nonce}"' in response.content.decode()


def test_static_assets_stay_cacheable_under_the_same_policy(client: Client) -> None:
    response = client.get("/static/careloop/app.css", secure=True)
    assert response.status_code == 200
    assert_security_headers(response)
    assert "no-store" not in response["Cache-Control"]


def test_session_and_csrf_cookies_are_secure_httponly_and_lax(
    client: Client, front_desk: User
) -> None:
    client.get("/accounts/login/", secure=True)
    response = client.post(
        "/accounts/login/", {"username": "frontdesk", "password": PASSWORD}, secure=True
    )
    assert response.status_code == 302
    for name in ("sessionid", "csrftoken"):
        cookie = client.cookies[name]
        assert cookie["secure"], name
        assert cookie["httponly"], name
        assert cookie["samesite"] == "Lax", name


def test_htmx_search_posts_pass_csrf_with_the_token_from_the_page(front_desk: User) -> None:
    # The CSRF cookie is HttpOnly, so script cannot read it: htmx sends the form's hidden
    # csrfmiddlewaretoken field, which the page renders inside the search form.
    browser = Client(enforce_csrf_checks=True)
    sign_in(browser, front_desk)
    page = browser.get("/patients/", secure=True)
    token = CSRF_INPUT.search(page.content.decode())
    assert token, "the search form carries no CSRF token"
    headers = {"HX-Request": "true", "Referer": "https://testserver/patients/"}

    refused = browser.post("/patients/", {"q": "garcia"}, secure=True, headers=headers)
    assert refused.status_code == 403

    accepted = browser.post(
        "/patients/",
        {"q": "garcia", "csrfmiddlewaretoken": token[1]},
        secure=True,
        headers=headers,
    )
    assert accepted.status_code == 200
    assert_security_headers(accepted)
