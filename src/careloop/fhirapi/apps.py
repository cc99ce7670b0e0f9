from __future__ import annotations

from django.apps import AppConfig


class FhirApiConfig(AppConfig):
    name = "careloop.fhirapi"
    label = "fhirapi"
    default_auto_field = "django.db.models.BigAutoField"
