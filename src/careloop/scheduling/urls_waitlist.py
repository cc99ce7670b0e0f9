"""Waitlist and EHR-conflict pages: the staff pages (`urlpatterns`, namespace "waitlist",
mounted under /schedule/) and the public claim link (`claim_urls`, namespace
"waitlist_claim", mounted at /w/)."""

from __future__ import annotations

from django.urls import path

from careloop.scheduling import views_waitlist

app_name = "waitlist"
urlpatterns = [
    path("waitlist/", views_waitlist.waitlist_list, name="list"),
    path("waitlist/add/", views_waitlist.waitlist_add, name="add"),
    path("waitlist/add/<uuid:patient_id>/", views_waitlist.waitlist_add_for, name="add_for"),
    path("waitlist/<uuid:entry_id>/", views_waitlist.waitlist_entry, name="entry"),
    path("conflicts/", views_waitlist.conflict_list, name="conflicts"),
    path(
        "conflicts/<uuid:conflict_id>/resolve/",
        views_waitlist.conflict_settle,
        name="conflict_resolve",
    ),
]

claim_urls = ([path("<str:code>", views_waitlist.claim, name="claim")], "waitlist_claim")
