from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_keys(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from careloop.security.keys import keyring_ensure

    keyring_ensure(using=using)


class SecurityConfig(AppConfig):
    name = "careloop.security"
    label = "security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_ensure_keys, sender=self)
