from __future__ import annotations

from django.urls import path

from careloop.scheduling import views_staff

app_name = "schedule"

urlpatterns = [
    path("", views_staff.day_view, name="day"),
    path("week/", views_staff.week_view, name="week"),
    path("provider/", views_staff.provider_view, name="provider"),
    path(
        "appointments/<uuid:appointment_id>/",
        views_staff.appointment_page,
        name="appointment",
    ),
    path(
        "appointments/<uuid:appointment_id>/status/",
        views_staff.appointment_status,
        name="status",
    ),
    path(
        "appointments/<uuid:appointment_id>/reschedule/",
        views_staff.appointment_move,
        name="reschedule",
    ),
    path("book/<uuid:patient_id>/", views_staff.book_page, name="book"),
]
