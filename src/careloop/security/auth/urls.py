from __future__ import annotations

from django.urls import path

from careloop.security.auth import views

# Included at "accounts/" without a namespace: LOGIN_URL and the templates say "login".
urlpatterns = [
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("mfa/verify/", views.mfa_verify, name="mfa_verify"),
    path("mfa/enrol/", views.mfa_enrol, name="mfa_enrol"),
    path("reauth/", views.reauth, name="reauth"),
    path("session/", views.session_status, name="session_status"),
]
