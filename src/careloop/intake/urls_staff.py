"""Staff pages of the intake app, mounted at /intake/ (careloop.urls)."""

from __future__ import annotations

from django.urls import path

from careloop.intake import views_staff

app_name = "intake"
urlpatterns = [
    path("questionnaires/", views_staff.questionnaires, name="questionnaires"),
    path("questionnaires/new/", views_staff.questionnaire_new, name="new"),
    path("questionnaires/<uuid:questionnaire_id>/", views_staff.questionnaire_edit, name="edit"),
    path("patients/<uuid:patient_id>/", views_staff.patient_forms, name="patient_forms"),
    path(
        "patients/<uuid:patient_id>/responses/<uuid:response_id>/",
        views_staff.response_detail,
        name="response",
    ),
    path(
        "patients/<uuid:patient_id>/responses/<uuid:response_id>/fhir/",
        views_staff.response_fhir,
        name="response_fhir",
    ),
    path("surveys/", views_staff.surveys, name="surveys"),
]
