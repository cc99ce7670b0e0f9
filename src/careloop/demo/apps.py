from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The synthetic practice (`careloop demo`)."""

    name = "careloop.demo"
    label = "demo"
    default_auto_field = "django.db.models.BigAutoField"
