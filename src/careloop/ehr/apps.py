from __future__ import annotations

from django.apps import AppConfig


class EhrConfig(AppConfig):
    name = "careloop.ehr"
    label = "ehr"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "EHR integration"

    def ready(self) -> None:
        # Registers the record handlers (Patient, Coverage, Appointment...) with the
        # ingest pipeline.
        from careloop.ehr import records  # noqa: F401
