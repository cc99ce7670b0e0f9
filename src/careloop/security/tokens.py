"""Personal API tokens for staff: create, list, revoke, and authenticate a presented token.

A token reads `clp_<prefix>_<secret>`: `prefix` (8 characters, not secret) finds the row;
the secret is 256 random bits. The row keeps only SHA-256 of the whole token. A plain
hash is enough because the secret is random and long (nothing to guess, unlike a
password), and it ties nothing to a server key that could be lost or rotated.

Every token expires (at most `MAX_DAYS` after creation). A revoked or expired token,
or one whose user is disabled, authenticates nobody; each refusal is audited as
`token.denied`. Disabling a user calls `tokens_revoke_for_user`.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Final

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest

from careloop.core import clock
from careloop.core.errors import NotFound
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.models import ApiToken, AuditEvent, User
from careloop.security.permissions import is_staff_role

PREFIX_LENGTH: Final = 8
DEFAULT_DAYS: Final = 30
MAX_DAYS: Final = 90
MAX_NAME_LENGTH: Final = 100
# `last_used_at` is for people ("is this token still in use?"); writing it on every call
# would turn each API read into a write. Once a minute is precise enough.
LAST_USED_RESOLUTION: Final = datetime.timedelta(minutes=1)

# Lowercase letters and digits only, so the prefix never contains the `_` separator.
_PREFIX_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN_SHAPE: Final = re.compile(r"^clp_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")
# A token's resource type in audit events.
AUDIT_RESOURCE: Final = "api_token"


class TokenError(ValueError):
    """A token cannot be created as asked (unknown user, bad lifetime, ...)."""


@dataclass(frozen=True)
class IssuedToken:
    """A new token. `raw` exists only here: it is shown once and never stored."""

    token: ApiToken
    raw: str


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _new_prefix() -> str:
    return "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))


@transaction.atomic
def token_create(
    *,
    user: User,
    name: str = "",
    days: int = DEFAULT_DAYS,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> IssuedToken:
    """A new token for `user`, valid for `days` (1 to `MAX_DAYS`); audited `token.create`.

    `actor` is whoever asked (None for the console operator, `careloop token create`).
    """
    if not user.is_active:
        raise TokenError(f"user {user.username} is disabled; a disabled user gets no token")
    if not is_staff_role(user.role):
        raise TokenError(f"role {user.role} has no access to the staff API; no token issued")
    if not 1 <= days <= MAX_DAYS:
        raise TokenError(f"a token lives 1 to {MAX_DAYS} days, not {days}")
    if len(name) > MAX_NAME_LENGTH:
        raise TokenError(f"a token's name is at most {MAX_NAME_LENGTH} characters")
    prefix = _new_prefix()
    while ApiToken.objects.filter(prefix=prefix).exists():
        prefix = _new_prefix()
    raw = f"clp_{prefix}_{secrets.token_urlsafe(32)}"
    at = clock.now()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        secret_hash=_digest(raw),
        created_at=at,
        expires_at=at + datetime.timedelta(days=days),
    )
    audit_record(
        action="token.create",
        request=request,
        actor=actor if actor is not None or request is not None else console_actor(),
        resource_type=AUDIT_RESOURCE,
        resource_id=str(token.id),
    )
    return IssuedToken(token=token, raw=raw)


def token_list(*, user: User) -> list[ApiToken]:
    """All of `user`'s tokens, newest first, whatever their state."""
    return list(ApiToken.objects.filter(user=user))


def token_state(token: ApiToken, *, at: datetime.datetime | None = None) -> str:
    """The state a list shows: "active", "revoked" or "expired"."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= (at or clock.now()):
        return "expired"
    return "active"


@transaction.atomic
def token_revoke(
    *,
    token_id: uuid.UUID,
    actor: User | None = None,
    request: HttpRequest | None = None,
    reason: str = "",
) -> ApiToken:
    """Revoke one token (`NotFound` if there is none); revoking twice changes nothing."""
    token = ApiToken.objects.select_for_update().filter(pk=token_id).first()
    if token is None:
        raise NotFound
    if token.revoked_at is None:
        token.revoked_at = clock.now()
        token.save(update_fields=["revoked_at"])
        _audit_revoke(token, actor=actor, request=request, reason=reason)
    return token


@transaction.atomic
def tokens_revoke_for_user(
    *, user: User, actor: User | None = None, request: HttpRequest | None = None
) -> int:
    """Revoke every live token of `user` (on disabling them); returns how many.

    Call it inside the transaction that disables the user, so both happen or neither.
    """
    at = clock.now()
    live = list(
        ApiToken.objects.select_for_update().filter(
            user=user, revoked_at__isnull=True, expires_at__gt=at
        )
    )
    for token in live:
        token.revoked_at = at
        token.save(update_fields=["revoked_at"])
        _audit_revoke(token, actor=actor, request=request, reason="user disabled")
    return len(live)


def _audit_revoke(
    token: ApiToken, *, actor: User | None, request: HttpRequest | None, reason: str
) -> None:
    audit_record(
        action="token.revoke",
        request=request,
        actor=actor if actor is not None or request is not None else console_actor(),
        resource_type=AUDIT_RESOURCE,
        resource_id=str(token.id),
        reason=reason,
    )


def _deny(request: HttpRequest | None, token: ApiToken | None, why: str) -> None:
    # The event names the token's owner when the prefix matched a row, so that the owner
    # can be told; the presented text itself is never recorded.
    owner = token.user if token is not None else None
    audit_record(
        action="token.denied",
        request=request,
        actor=owner,
        actor_kind=None if owner is not None else AuditEvent.ActorKind.ANONYMOUS,
        resource_type=AUDIT_RESOURCE,
        resource_id=str(token.id) if token is not None else "",
        outcome="denied",
        reason=why,
    )


def token_authenticate(*, raw: str, request: HttpRequest | None = None) -> User | None:
    """The active staff user a presented token belongs to, or None (audited `token.denied`).

    None for a malformed or unknown token, a wrong secret, a revoked or expired token, and
    a disabled user or one whose role no longer reaches the staff app.
    """
    match = _TOKEN_SHAPE.match(raw)
    if match is None:
        _deny(request, None, "malformed token")
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=match[1]).first()
    # Compare digests in constant time even when the prefix is unknown, so timing does
    # not tell a caller which prefixes exist.
    expected = token.secret_hash if token is not None else _digest("")
    if not hmac.compare_digest(expected, _digest(raw)) or token is None:
        _deny(request, token, "unknown token" if token is None else "wrong secret")
        return None
    at = clock.now()
    why = ""
    if token.revoked_at is not None:
        why = "token revoked"
    elif token.expires_at <= at:
        why = "token expired"
    elif not token.user.is_active:
        why = "user disabled"
    elif not is_staff_role(token.user.role):
        why = "role has no staff access"
    if why:
        _deny(request, token, why)
        return None
    stale = at - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at <= stale:
        # A conditional UPDATE: of concurrent requests, one writes and the rest match nothing.
        ApiToken.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=token.pk
        ).update(last_used_at=at)
    return token.user
