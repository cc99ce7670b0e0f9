from __future__ import annotations

from django.apps import AppConfig


class AuthConfig(AppConfig):
    """Sign-in, TOTP, lockout, rate limits and session policy (careloop.security.auth).

    Its own app, with its own migrations, so that the account-protection tables evolve
    apart from the audit and key tables of `careloop.security`.
    """

    name = "careloop.security.auth"
    # "auth" is django.contrib.auth's label.
    label = "security_auth"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from careloop.security import sessions

        sessions.connect_signals()
