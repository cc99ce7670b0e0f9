from __future__ import annotations

from django.urls import path

from careloop.security import views_audit as views

app_name = "audit"

urlpatterns = [
    path("", views.audit_log, name="log"),
    path("export.ndjson", views.audit_export_ndjson, name="export_ndjson"),
    path("export.csv", views.audit_export_csv, name="export_csv"),
    path("patients/<uuid:patient_id>/disclosures/", views.audit_disclosures, name="disclosures"),
]
