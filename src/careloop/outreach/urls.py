from __future__ import annotations

from django.urls import path

from careloop.outreach import views

app_name = "outreach"
urlpatterns = [
    path("sms/inbound", views.sms_inbound, name="sms_inbound"),
    path("sms/status", views.sms_status, name="sms_status"),
]
