from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_healthz_answers_without_login(client: Client) -> None:
    response = client.get("/healthz", secure=True)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_database_and_migrations_ok(client: Client) -> None:
    response = client.get("/readyz", secure=True)
    assert response.status_code == 200
    assert response.json()["pending_migrations"] == 0
