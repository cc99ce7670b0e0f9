"""Superseded by `careloop.security.permissions` (the permission table) and
`careloop.security.scope` (which patients an actor sees).

Kept only so that code written against the old role lists keeps importing while the
work in flight moves over; new code must use `permissions.require`/`allowed`. Delete
this module when nothing imports it.
"""

from __future__ import annotations

from collections.abc import Collection

from careloop.core.errors import PermissionDenied
from careloop.security.models import User
from careloop.security.permissions import Actor

__all__ = ["Actor", "has_role", "require_role"]


def has_role(actor: Actor, allowed_roles: Collection[str]) -> bool:
    return isinstance(actor, User) and actor.is_active and actor.role in allowed_roles


def require_role(actor: Actor, allowed_roles: Collection[str]) -> User:
    if isinstance(actor, User) and has_role(actor, allowed_roles):
        return actor
    raise PermissionDenied
