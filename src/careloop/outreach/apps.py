from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OutreachConfig(AppConfig):
    name = "careloop.outreach"
    label = "outreach"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_install_builtins, sender=self)


def _install_builtins(*, using: str = "default", **kwargs: Any) -> None:
    """The shipped templates and journeys, once (an admin's edits are kept)."""
    from careloop.outreach.builtin_journeys import journeys_install_builtin
    from careloop.outreach.templates import templates_install_builtin

    templates_install_builtin(using=using)
    journeys_install_builtin()
