from __future__ import annotations

from django.apps import AppConfig


class OutreachConfig(AppConfig):
    name = "careloop.outreach"
    label = "outreach"
    default_auto_field = "django.db.models.BigAutoField"
