"""The patient's forms, mounted at /portal/forms/ (careloop.urls)."""

from __future__ import annotations

from django.urls import path

from careloop.intake import views_portal

app_name = "intake_portal"
urlpatterns = [
    path("", views_portal.forms_list, name="list"),
    path("<uuid:assignment_id>/", views_portal.form_page, name="form"),
    path("<uuid:assignment_id>/done/", views_portal.form_done, name="done"),
]
