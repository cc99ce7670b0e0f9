from __future__ import annotations

from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "careloop.leads"
    label = "leads"
    default_auto_field = "django.db.models.BigAutoField"
