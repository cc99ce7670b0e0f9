"""Which patients an actor sees: the object-level half of minimum necessary.

The permission table says whether a role may read patients at all; `patient_scope`
says which ones. A clinician (`SCOPED_ROLES`) sees the patients of her care team (the
patient's primary provider is the user's provider) or of her location (the patient's
home location), plus any patient opened by an unexpired break-the-glass grant. The
other roles that read patients see all of them: the front desk and admin book anyone,
and care coordinators work gaps and referrals across the whole population.

Every patient selector filters through this one Q, so a patient outside the scope
answers `NotFound` exactly like a patient that does not exist.
"""

from __future__ import annotations

from django.db.models import Q

from careloop.core import clock
from careloop.security.models import BreakGlassGrant, User
from careloop.security.permissions import SCOPED_ROLES, Actor, Op, Resource, actor_allowed

NOBODY = Q(pk__in=[])


def patient_scope(actor: Actor) -> Q:
    """A filter on `Patient` for the patients `actor` may see (none for a non-reader)."""
    if not isinstance(actor, User) or not actor_allowed(actor, Op.READ, Resource.DEMOGRAPHICS):
        return NOBODY
    if actor.role not in SCOPED_ROLES:
        return Q()
    scope = Q(
        pk__in=BreakGlassGrant.objects.filter(user=actor, expires_at__gt=clock.now())
        .order_by()
        .values("patient_id")
    )
    if actor.provider_id is not None:
        scope |= Q(primary_provider_id=actor.provider_id)
    if actor.location_id is not None:
        scope |= Q(home_location_id=actor.location_id)
    return scope
