from __future__ import annotations

from django.urls import path

from careloop.caregaps import views

app_name = "caregaps"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("<str:measure_id>/", views.worklist, name="worklist"),
    path("<str:measure_id>/export.csv", views.export_csv, name="export_csv"),
    path("<str:measure_id>/enroll", views.enroll, name="enroll"),
]
