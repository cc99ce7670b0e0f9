"""Template helpers for the staff shell."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from django import template
from django.conf.locale import LANG_INFO
from django.contrib.staticfiles import finders
from django.templatetags.static import static

from careloop.security.permissions import Actor, Op, Resource, actor_allowed

register = template.Library()


@cache
def _fingerprint(path: str) -> str:
    found = finders.find(path)
    if not isinstance(found, str):
        return "0"
    return hashlib.sha256(Path(found).read_bytes()).hexdigest()[:12]


@register.simple_tag
def asset(path: str) -> str:
    """The static URL of `path` with its content hash, so it may be cached for a year."""
    return f"{static(path)}?v={_fingerprint(path)}"


@register.filter
def can_read_patients(user: Actor) -> bool:
    return actor_allowed(user, Op.READ, Resource.DEMOGRAPHICS)


@register.filter
def can_read_appointments(user: Actor) -> bool:
    return actor_allowed(user, Op.READ, Resource.APPOINTMENTS)


@register.filter
def can_read_clinical(user: Actor) -> bool:
    return actor_allowed(user, Op.READ, Resource.CLINICAL)


@register.filter
def can_read_messages(user: Actor) -> bool:
    return actor_allowed(user, Op.READ, Resource.MESSAGES)


@register.filter
def can_edit_config(user: Actor) -> bool:
    return actor_allowed(user, Op.WRITE, Resource.CONFIG)


@register.filter
def can_read_audit(user: Actor) -> bool:
    return actor_allowed(user, Op.READ, Resource.AUDIT)


@register.filter
def language_label(code: str) -> str:
    """ "Spanish (es)" for "es"; the bare code when Django does not know the language."""
    info = LANG_INFO.get((code or "").lower())
    if not info or "name" not in info:
        return code or "—"
    return f"{info['name']} ({code})"
