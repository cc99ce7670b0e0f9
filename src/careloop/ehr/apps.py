from __future__ import annotations

from django.apps import AppConfig


class EhrConfig(AppConfig):
    name = "careloop.ehr"
    label = "ehr"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "EHR integration"
