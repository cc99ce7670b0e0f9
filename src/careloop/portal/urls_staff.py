"""The staff team inbox of portal messages, mounted at /inbox/ (careloop.urls)."""

from __future__ import annotations

from django.urls import path

from careloop.portal import staff_views

app_name = "inbox"
urlpatterns = [
    path("", staff_views.inbox_list, name="list"),
    path("<uuid:thread_id>/", staff_views.thread, name="thread"),
    path("<uuid:thread_id>/assign/", staff_views.assign, name="assign"),
    path("<uuid:thread_id>/close/", staff_views.close, name="close"),
    path("<uuid:thread_id>/reopen/", staff_views.reopen, name="reopen"),
    path("files/<uuid:attachment_id>/", staff_views.attachment, name="attachment"),
]
