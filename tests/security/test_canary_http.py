"""Class-I values typed into the staff pages reach no log line, URL or task argument."""

from __future__ import annotations

import logging
import re
import secrets

import pytest
from django.test import Client
from django_tasks_db.models import DBTaskResult

from careloop.patients.models import Patient
from careloop.security.models import AuditEvent, Role, User
from tests.security.personas import force_verified_login


@pytest.mark.django_db
def test_canaries_entered_through_the_pages_stay_out_of_logs_urls_and_tasks(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Letters only: a "name" with digits in it is searched as an MRN, as it should be.
    token = "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(8))
    given, family = f"Canarygiven{token}", f"Canaryfamily{token}"
    phone, email = "(737) 555-0142", f"canary{token.lower()}@example.org"
    desk = User.objects.create_user(username="desk.canary", password="x" * 20, role=Role.FRONT_DESK)
    force_verified_login(client, desk)
    urls: list[str] = []

    created = client.post(
        "/patients/new/",
        {
            "given_name": given,
            "family_name": family,
            "birth_date": "1969-07-20",
            "sex": "female",
            "preferred_language": "en",
            "time_zone": "America/Chicago",
            "phone": phone,
            "email": email,
            "mrn": f"MRN{token}7",
        },
        secure=True,
    )
    assert created.status_code == 302
    urls.append(created["Location"])
    page = client.get(created["Location"], secure=True)
    assert family in page.content.decode()
    for query in (family, email, phone, f"MRN{token}7"):
        found = client.post("/patients/", {"q": query}, secure=True)
        assert f"/patients/{Patient.objects.get().pk}/" in found.content.decode(), query
        urls += re.findall(r'(?:href|action|hx-post|hx-get|src)="([^"]*)"', found.content.decode())
    # A request for an unknown page with a canary in the path: logged as a 404, but how?
    client.get(f"/patients/{family}/", secure=True)

    canaries = [given, family, email, "7375550142", f"MRN{token}7"]
    logged = caplog.text.lower()
    assert not [c for c in canaries if c.lower() in logged]
    assert not [url for url in urls for c in canaries if c.lower() in url.lower()]
    task_arguments = " ".join(str(t.args_kwargs) for t in DBTaskResult.objects.all())
    assert not [c for c in canaries if c in task_arguments]
    audit = " ".join(
        str(row)
        for row in AuditEvent.objects.values_list(
            "actor_label", "resource_type", "resource_id", "fields"
        )
    )
    assert not [c for c in canaries if c.lower() in audit.lower()]
