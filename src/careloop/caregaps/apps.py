from __future__ import annotations

from django.apps import AppConfig


class CaregapsConfig(AppConfig):
    name = "careloop.caregaps"
    label = "caregaps"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Care gaps and quality measures"
