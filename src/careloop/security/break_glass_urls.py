from __future__ import annotations

from django.urls import path

from careloop.security import break_glass_views as views

app_name = "break_glass"

urlpatterns = [
    path("", views.break_glass_report_page, name="report"),
    path("<uuid:patient_id>/", views.break_glass_open, name="open"),
]
