from __future__ import annotations

from django.contrib.auth.forms import AuthenticationForm


class LoginForm(AuthenticationForm):
    """Django's login form, with one message for every failure.

    Whether the username exists or the account is inactive is nobody's business but
    the administrator's, so a failed sign-in never says which it was.
    """

    error_messages = {
        "invalid_login": "That username and password did not match. Please try again.",
        "inactive": "That username and password did not match. Please try again.",
    }
