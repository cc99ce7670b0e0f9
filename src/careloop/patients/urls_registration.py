from __future__ import annotations

from django.urls import path

from careloop.patients import views_registration

app_name = "patient_registration"

urlpatterns = [
    path("new/", views_registration.patient_new, name="new"),
    path(
        "<uuid:patient_id>/merge/<uuid:duplicate_id>/",
        views_registration.patient_merge_confirm,
        name="merge",
    ),
]
