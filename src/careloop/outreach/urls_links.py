"""Public pages behind links in messages (careloop.outreach.links)."""

from __future__ import annotations

from django.urls import path

from careloop.outreach import link_views

app_name = "outreach_links"
urlpatterns = [path("<str:code>", link_views.link, name="link")]
