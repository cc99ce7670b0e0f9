from __future__ import annotations

from django.urls import path

from careloop.consent import views

app_name = "consent"

# Mounted under /patients/ beside the patients app's own routes.
urlpatterns = [
    path("<uuid:patient_id>/consents/", views.consent_history_page, name="history"),
    path("<uuid:patient_id>/consents/record/", views.consent_record_page, name="record"),
    path("<uuid:patient_id>/consents/sign/<str:kind>/", views.consent_sign_page, name="sign"),
    path("<uuid:patient_id>/consents/fhir/", views.consent_fhir_export, name="fhir"),
    path("<uuid:patient_id>/preferences/", views.consent_preferences_page, name="preferences"),
]
