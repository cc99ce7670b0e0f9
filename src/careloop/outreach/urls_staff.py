"""Staff pages for outreach (careloop.outreach.staff_views)."""

from __future__ import annotations

from django.urls import path

from careloop.outreach import staff_views

app_name = "outreach_staff"
urlpatterns = [
    path("journeys/", staff_views.journeys, name="journeys"),
    path("journeys/<slug:key>/", staff_views.journey_edit, name="journey_edit"),
    path("journeys/<slug:key>/dry-run", staff_views.journey_dry_run_page, name="journey_dry_run"),
    path("templates/", staff_views.templates, name="templates"),
    path(
        "templates/<slug:template>/<str:channel>/<str:language>/",
        staff_views.template_edit,
        name="template_edit",
    ),
    path("messages/", staff_views.message_log, name="messages"),
    path("tasks/", staff_views.tasks, name="tasks"),
]
