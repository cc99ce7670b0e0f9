from __future__ import annotations

from django.urls import path

from careloop.ehr import views

app_name = "ehr"

urlpatterns = [
    path("quarantine/", views.quarantine_list_page, name="quarantine"),
    path("quarantine/reprocess/", views.quarantine_reprocess_action, name="quarantine_reprocess"),
    path("quarantine/<uuid:item_id>/", views.quarantine_item_page, name="quarantine_item"),
    path(
        "quarantine/<uuid:item_id>/dismiss/",
        views.quarantine_dismiss_action,
        name="quarantine_dismiss",
    ),
    path("matches/", views.match_list_page, name="matches"),
    path("matches/<int:review_id>/", views.match_review_page, name="match_review"),
]
