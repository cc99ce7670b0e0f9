from __future__ import annotations

from django.urls import path

from careloop.patients import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("<uuid:patient_id>/", views.patient_detail, name="detail"),
]
