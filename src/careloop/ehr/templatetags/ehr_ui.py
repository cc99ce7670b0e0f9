"""Template filters for the integration pages: which of them this user may open."""

from __future__ import annotations

from django import template

from careloop.security.permissions import Actor, Op, Resource, actor_allowed

register = template.Library()


@register.filter
def can_read_integration(user: Actor) -> bool:
    return actor_allowed(user, Op.READ, Resource.INTEGRATION)


@register.filter
def can_review_matches(user: Actor) -> bool:
    return actor_allowed(user, Op.WRITE, Resource.DEMOGRAPHICS)
