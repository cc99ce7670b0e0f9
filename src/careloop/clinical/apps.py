from __future__ import annotations

from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    name = "careloop.clinical"
    label = "clinical"
    default_auto_field = "django.db.models.BigAutoField"
