"""SMART scopes for system clients: `system/<Type|*>.<read|rs|r|s>` (SMART v1 and v2).

A scope says which resource types a client may read (`r`) and search (`s`); v1's
`read` means both. Scopes only narrow: the client's role in the permission table
bounds what any scope can reach (careloop.fhirapi.auth checks both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

READ: Final = "r"
SEARCH: Final = "s"
_SHAPE: Final = re.compile(r"^system/(\*|[A-Z][A-Za-z]{1,39})\.(read|\*|[cruds]{1,5})$")


@dataclass(frozen=True)
class Scope:
    resource_type: str  # a FHIR type or "*"
    interactions: frozenset[str]

    def covers(self, other: Scope) -> bool:
        same_type = self.resource_type in ("*", other.resource_type)
        return same_type and other.interactions <= self.interactions


def parse_scope(text: str) -> Scope | None:
    """The scope, or None for one careloop does not grant (user/, patient/, writes)."""
    match = _SHAPE.match(text)
    if match is None:
        return None
    resource_type, access = match.groups()
    interactions = frozenset({READ, SEARCH}) if access in ("read", "*") else frozenset(access)
    if not interactions <= {READ, SEARCH}:
        return None  # careloop's FHIR API is read-only: no c, u or d
    return Scope(resource_type, interactions)


def grant(requested: list[str], allowed: list[str]) -> list[str]:
    """The requested scopes that some allowed scope covers (the rest are not granted)."""
    registered = [scope for scope in map(parse_scope, allowed) if scope is not None]
    granted = []
    for text in requested:
        scope = parse_scope(text)
        if scope is not None and any(mine.covers(scope) for mine in registered):
            granted.append(text)
    return granted


def permits(scopes: list[str], resource_type: str, interaction: str) -> bool:
    """Does any of the token's scopes let it `interaction` resources of `resource_type`?"""
    wanted = Scope(resource_type, frozenset({interaction}))
    return any(scope is not None and scope.covers(wanted) for scope in map(parse_scope, scopes))
