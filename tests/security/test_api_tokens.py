"""Personal API tokens: issued once through the CLI, stored hashed, refused when they should be."""

from __future__ import annotations

import datetime
import hashlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from careloop.core import clock
from careloop.security.models import ApiToken, AuditEvent, Role, User
from careloop.security.tokens import (
    MAX_DAYS,
    TokenError,
    token_authenticate,
    token_create,
    token_revoke,
    tokens_revoke_for_user,
)

pytestmark = pytest.mark.django_db


def staff_user(role: str, username: str) -> User:
    return User.objects.create(username=username, role=role)


@pytest.fixture
def dana() -> User:
    return staff_user(Role.FRONT_DESK, "dana")


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def denials() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="token.denied"))


def test_create_prints_the_token_once_and_the_database_keeps_only_its_hash(dana: User) -> None:
    out, err = run("create", "--user", "dana", "--name", "reporting script", "--days", "7")
    raw = out.strip()
    assert raw.startswith("clp_")
    assert "cannot be shown again" in err
    token = ApiToken.objects.get(user=dana)
    assert raw.startswith(f"clp_{token.prefix}_")
    secret = raw.removeprefix(f"clp_{token.prefix}_")
    assert len(secret) == 43  # 256 random bits, base64url
    assert token.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.name == "reporting script"
    assert token.expires_at - token.created_at == datetime.timedelta(days=7)
    # Read the row as the database holds it: neither the token nor its secret is there.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM security_apitoken")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert raw not in row
    assert secret not in row

    listing, _ = run("list", "--user", "dana")
    assert f"clp_{token.prefix}_…" in listing
    assert "active" in listing
    assert secret not in listing
    created = AuditEvent.objects.get(action="token.create")
    assert created.resource_id == str(token.id)
    assert created.actor_kind == "system"


def test_a_valid_token_authenticates_its_user_and_records_its_use(dana: User) -> None:
    issued = token_create(user=dana, name="ci")
    assert token_authenticate(raw=issued.raw) == dana
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None
    assert denials() == []


def test_a_revoked_token_authenticates_nobody_and_the_refusal_is_audited(dana: User) -> None:
    issued = token_create(user=dana)
    out, _ = run("revoke", str(issued.token.id))
    assert "revoked" in out

    assert token_authenticate(raw=issued.raw) is None
    [denied] = denials()
    assert denied.outcome == "denied"
    assert denied.actor_id == str(dana.pk)
    assert denied.resource_id == str(issued.token.id)
    assert AuditEvent.objects.filter(action="token.revoke", resource_id=str(issued.token.id))
    listing, _ = run("list", "--user", "dana")
    assert "revoked" in listing


def test_an_expired_token_authenticates_nobody(dana: User) -> None:
    issued = token_create(user=dana, days=1)
    with clock.frozen(issued.token.expires_at + datetime.timedelta(seconds=1)):
        assert token_authenticate(raw=issued.raw) is None
    assert len(denials()) == 1


def test_disabling_a_user_ends_their_tokens(dana: User) -> None:
    first, second = token_create(user=dana), token_create(user=dana)
    dana.is_active = False
    dana.save(update_fields=["is_active"])
    # Even before the tokens are revoked, an inactive user is refused.
    assert token_authenticate(raw=first.raw) is None

    assert tokens_revoke_for_user(user=dana) == 2
    assert not ApiToken.objects.filter(user=dana, revoked_at__isnull=True).exists()
    assert AuditEvent.objects.filter(action="token.revoke").count() == 2
    assert token_authenticate(raw=second.raw) is None


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "clp_",
        "not a token",
        "clp_abcdefgh_" + "x" * 43,  # well-formed, unknown prefix
        "clp_ABCDEFGH_" + "x" * 43,  # wrong alphabet
    ],
)
def test_malformed_and_unknown_tokens_authenticate_nobody(dana: User, presented: str) -> None:
    token_create(user=dana)
    assert token_authenticate(raw=presented) is None
    [denied] = denials()
    assert denied.actor_kind == "anonymous"


def test_the_right_prefix_with_the_wrong_secret_authenticates_nobody(dana: User) -> None:
    issued = token_create(user=dana)
    forged = issued.raw[:-4] + ("AAAA" if not issued.raw.endswith("AAAA") else "BBBB")
    assert token_authenticate(raw=forged) is None
    assert token_authenticate(raw=issued.raw) == dana


def test_tokens_expire_within_the_maximum_lifetime(dana: User) -> None:
    with pytest.raises(CommandError, match=f"1 to {MAX_DAYS} days"):
        run("create", "--user", "dana", "--days", str(MAX_DAYS + 1))
    with pytest.raises(CommandError, match="1 to"):
        run("create", "--user", "dana", "--days", "0")
    assert not ApiToken.objects.exists()


def test_no_token_for_a_patient_account_or_a_disabled_user(dana: User) -> None:
    patient = staff_user(Role.PATIENT, "portal-user")
    with pytest.raises(TokenError):
        token_create(user=patient)
    dana.is_active = False
    dana.save(update_fields=["is_active"])
    with pytest.raises(TokenError):
        token_create(user=dana)


def test_cli_names_an_unknown_user_or_token_in_one_line(dana: User) -> None:
    with pytest.raises(CommandError, match="no user 'nobody'"):
        run("create", "--user", "nobody")
    with pytest.raises(CommandError, match="not a token id"):
        run("revoke", "12")
    with pytest.raises(CommandError, match="no token"):
        run("revoke", "00000000-0000-0000-0000-000000000000")


def test_revoking_twice_changes_nothing(dana: User) -> None:
    issued = token_create(user=dana)
    first = token_revoke(token_id=issued.token.id).revoked_at
    assert token_revoke(token_id=issued.token.id).revoked_at == first
    assert AuditEvent.objects.filter(action="token.revoke").count() == 1
