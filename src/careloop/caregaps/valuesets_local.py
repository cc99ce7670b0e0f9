"""Practice value sets: code lists a practice-defined measure declares in its own file.

The official eCQM expansions ship as data (careloop.caregaps.terminology); a practice
gap (careloop.caregaps.measures.awv, ...) needs a few code lists nobody publishes as a
VSAC set, or publishes under a code system spelling the EHRs do not send. Such a list
is declared where it is used:

    AWV_VISIT = local_valueset("Medicare Annual Wellness Visit", 1, (
        Code("G0438", HCPCS), Code("G0439", HCPCS),
    ))

and becomes an ordinary `ValueSetRef`: it loads into the same terminology tables
(ValueSet, ValueSetCode) under an OID of careloop's own arc, so a retrieve of it
compiles exactly like a retrieve of an official set. Evaluation loads it on first
use (`valuesets_ensure`), and reloads it when its codes changed in code: the stored
version is a digest of the codes.

careloop's OID arc is `2.25.<a UUID as an integer>` (ITU-T X.667: an OID anyone may
form from a UUID, with no registration); value sets are `<root>.1.<n>`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from careloop.caregaps.dsl import Code, ValueSetRef
from careloop.caregaps.terminology import Expansion, valuesets_load

CARELOOP_OID_ROOT = "2.25.266796303835144180900845638707298989414"
VALUESET_ARC = f"{CARELOOP_OID_ROOT}.1"

_DECLARED: dict[str, Expansion] = {}


class LocalValueSetError(ValueError):
    """Two declarations claim one OID with different codes (a programming error)."""


def local_valueset(name: str, number: int, codes: Iterable[Code]) -> ValueSetRef:
    """Declare practice value set `<root>.1.<number>` with these codes."""
    oid = f"{VALUESET_ARC}.{number}"
    members = sorted({(c.system, c.code, c.display) for c in codes})
    digest = hashlib.sha256(repr(members).encode()).hexdigest()[:16]
    expansion = Expansion(
        oid=oid, url=f"urn:oid:{oid}", version=f"careloop-{digest}", name=name, codes=members
    )
    known = _DECLARED.get(oid)
    if known is not None and known.version != expansion.version:
        raise LocalValueSetError(f"value set {oid} is declared twice with different codes")
    _DECLARED[oid] = expansion
    return ValueSetRef(name, oid)


def local_valuesets_ensure(*, oids: set[str], stored: dict[str, str] | None = None) -> int:
    """Load the declared practice value sets among `oids` that are missing from the
    tables or stored with other codes (`stored`: the versions stored, oid to version,
    when the caller has read them; else one query). Returns how many were loaded."""
    from careloop.caregaps.models import ValueSet

    wanted = {oid: _DECLARED[oid] for oid in oids if oid in _DECLARED}
    if not wanted:
        return 0
    if stored is None:
        stored = dict(ValueSet.objects.filter(oid__in=wanted).values_list("oid", "version"))
    stale = [e for oid, e in sorted(wanted.items()) if stored.get(oid) != e.version]
    if stale:
        valuesets_load(expansions=stale)
    return len(stale)


def declared_local_valuesets() -> list[Expansion]:
    """Every practice value set the imported measure files declared (docs, tests)."""
    return [_DECLARED[oid] for oid in sorted(_DECLARED)]
