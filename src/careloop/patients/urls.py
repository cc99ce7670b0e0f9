from __future__ import annotations

from django.urls import path

from careloop.patients import views, views_profile

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("<uuid:patient_id>/", views.patient_detail, name="detail"),
    path(
        "<uuid:patient_id>/lifecycle/recompute/",
        views_profile.lifecycle_recompute_view,
        name="lifecycle_recompute",
    ),
    path("<uuid:patient_id>/contacts/", views_profile.contacts_page, name="contacts"),
    path("<uuid:patient_id>/address/", views_profile.address_page, name="address"),
    path("<uuid:patient_id>/coverage/", views_profile.coverage_page, name="coverage"),
    path("<uuid:patient_id>/notes/", views_profile.notes_page, name="notes"),
    path("<uuid:patient_id>/care-team/", views_profile.care_team_page, name="care_team"),
    path("<uuid:patient_id>/household/", views_profile.household_page, name="household"),
]
