"""The patient portal, mounted at /portal/ (careloop.urls)."""

from __future__ import annotations

from django.urls import path

from careloop.portal import (
    views,
    views_appointments,
    views_consents,
    views_insurance,
    views_messages,
    views_push,
)

app_name = "portal"
urlpatterns = [
    path("", views.home, name="home"),
    path("security/", views.security, name="security"),
    path("signin/", views.signin, name="signin"),
    path("signin/code/", views.signin_code, name="signin_code"),
    path("signin/link/", views.link_request, name="link_request"),
    path("signin/link/open/", views.link_open, name="link_open"),
    path("signout/", views.signout, name="signout"),
    path("register/", views.register, name="register"),
    path("register/verify/", views.register_verify, name="register_verify"),
    # Appointments, self-scheduling and the proxy's record switcher (views_appointments).
    path("switch/", views_appointments.acting_switch, name="acting_switch"),
    path("book/", views_appointments.book, name="book"),
    path("book/confirm/", views_appointments.book_confirm, name="book_confirm"),
    path(
        "appointments/<uuid:appointment_id>/calendar.ics",
        views_appointments.appointment_calendar,
        name="appointment_calendar",
    ),
    path(
        "appointments/<uuid:appointment_id>/confirm/",
        views_appointments.appointment_confirm,
        name="appointment_confirm",
    ),
    path(
        "appointments/<uuid:appointment_id>/cancel/",
        views_appointments.appointment_cancel,
        name="appointment_cancel",
    ),
    path(
        "appointments/<uuid:appointment_id>/reschedule/",
        views_appointments.appointment_reschedule,
        name="appointment_reschedule",
    ),
    path(
        "appointments/<uuid:appointment_id>/check-in/",
        views_appointments.appointment_check_in,
        name="appointment_check_in",
    ),
    path(
        "appointments/<uuid:appointment_id>/join/",
        views_appointments.appointment_join,
        name="appointment_join",
    ),
    path("consents/", views_consents.consents, name="consents"),
    path("consents/sign/<str:kind>/", views_consents.consent_sign_page, name="consent_sign"),
    path("consents/revoke/<str:kind>/", views_consents.consent_revoke_page, name="consent_revoke"),
    path(
        "consents/<uuid:record_id>/download/",
        views_consents.consent_download,
        name="consent_download",
    ),
    path("preferences/", views_consents.preferences, name="preferences"),
    # Web Push in this browser (views_push); the worker's scope is the portal.
    path("sw.js", views_push.service_worker, name="service_worker"),
    path("push/on/", views_push.push_on, name="push_on"),
    path("push/off/", views_push.push_off, name="push_off"),
    path(
        "push/<uuid:subscription_id>/remove/",
        views_push.push_device_remove,
        name="push_device_remove",
    ),
    path("disclosures/", views_consents.disclosures, name="disclosures"),
    # Secure messages (views_messages).
    path("messages/", views_messages.inbox, name="messages"),
    path("messages/new/", views_messages.new, name="message_new"),
    path("messages/<uuid:thread_id>/", views_messages.thread, name="message_thread"),
    path(
        "messages/files/<uuid:attachment_id>/",
        views_messages.attachment,
        name="message_attachment",
    ),
    # The insurance card (views_insurance).
    path("insurance/", views_insurance.insurance_page, name="insurance"),
    path(
        "insurance/files/<uuid:card_id>/",
        views_insurance.insurance_card_file,
        name="insurance_card_file",
    ),
]
