"""The patient portal, mounted at /portal/ (careloop.urls)."""

from __future__ import annotations

from django.urls import path

from careloop.portal import views

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
]
