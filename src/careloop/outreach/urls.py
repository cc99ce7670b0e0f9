from __future__ import annotations

from django.urls import path

from careloop.outreach import views

app_name = "outreach"
urlpatterns = [
    path("sms/inbound", views.sms_inbound, name="sms_inbound"),
    path("sms/status", views.sms_status, name="sms_status"),
    path("voice/gather", views.voice_gather, name="voice_gather"),
    path("voice/status", views.voice_status_callback, name="voice_status"),
    path("email/unsubscribe", views.email_unsubscribe, name="email_unsubscribe"),
]
