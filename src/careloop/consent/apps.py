from __future__ import annotations

from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "careloop.consent"
    label = "consent"
    default_auto_field = "django.db.models.BigAutoField"
