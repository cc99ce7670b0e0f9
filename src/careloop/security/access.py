"""Who may use which staff page, until the permission table of the security issue lands.

Every check goes through `require_role` (or `has_role`), so replacing the rule with the
full role-by-action table means changing this module and nothing that calls it.
"""

from __future__ import annotations

from collections.abc import Collection

from django.contrib.auth.models import AnonymousUser

from careloop.core.errors import PermissionDenied
from careloop.security.models import Role, User

Actor = User | AnonymousUser

# Any staff role signs in to the staff pages; a patient uses the portal only.
STAFF_PAGE_ROLES: frozenset[str] = frozenset(role for role in Role if role != Role.PATIENT)
# The practice's headline counts are aggregates; the auditor's work is the audit log only.
HEADLINE_ROLES: frozenset[str] = STAFF_PAGE_ROLES - {Role.AUDITOR}
# Identified patient data: not for analysts (de-identified only) or auditors (audit log only).
PATIENT_READ_ROLES: frozenset[str] = STAFF_PAGE_ROLES - {Role.AUDITOR, Role.ANALYST}


def has_role(actor: Actor, allowed_roles: Collection[str]) -> bool:
    """Is `actor` a signed-in, active user whose role is one of `allowed_roles`?"""
    return isinstance(actor, User) and actor.is_active and actor.role in allowed_roles


def require_role(actor: Actor, allowed_roles: Collection[str]) -> User:
    """The actor as a `User` when `has_role`; `PermissionDenied` otherwise."""
    if isinstance(actor, User) and has_role(actor, allowed_roles):
        return actor
    raise PermissionDenied
