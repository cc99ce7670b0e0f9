"""`careloop fhir client add|list|disable`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import CommandError, call_command

from careloop.fhirapi.models import Client
from tests.fhirapi.clients import public_jwks

pytestmark = pytest.mark.django_db


def test_an_operator_adds_lists_and_disables_a_client(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp_path / "warehouse.jwks.json"
    jwks.write_text(json.dumps(public_jwks(key, "k1")))
    out = io.StringIO()
    call_command(
        "fhir",
        "client",
        "add",
        "warehouse",
        "--jwks",
        str(jwks),
        "--scope",
        "system/*.read",
        "--role",
        "care_coordinator",
        stdout=out,
    )
    client = Client.objects.get(name="warehouse")
    assert out.getvalue().strip() == f"client_id {client.client_id}"
    listing = io.StringIO()
    call_command("fhir", "client", "list", stdout=listing)
    assert "warehouse" in listing.getvalue() and "active" in listing.getvalue()
    call_command("fhir", "client", "disable", "warehouse", stdout=io.StringIO())
    client.refresh_from_db()
    assert not client.active


def test_a_private_key_or_a_scoped_role_is_refused(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = json.loads(__import__("jwt").algorithms.RSAAlgorithm.to_jwk(key))
    leaked = tmp_path / "leaked.json"
    leaked.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(CommandError, match="private key"):
        call_command(
            "fhir",
            "client",
            "add",
            "x",
            "--jwks",
            str(leaked),
            "--scope",
            "system/*.read",
            "--role",
            "analyst",
        )
    public = tmp_path / "public.json"
    public.write_text(json.dumps(public_jwks(key, "k1")))
    with pytest.raises(CommandError, match="role"):
        call_command(
            "fhir",
            "client",
            "add",
            "x",
            "--jwks",
            str(public),
            "--scope",
            "system/*.read",
            "--role",
            "clinician",
        )
