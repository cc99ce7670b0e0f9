"""What sign-in protection has to remember between requests and across processes.

Everything lives in the database (not in process memory or a cache) so that several
web processes on several hosts see the same failures, locks and rate-limit windows.
No row holds free text: a typed username is kept only as a keyed digest.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AccountState(models.Model):
    """Per-user sign-in state: the session generation and any lock.

    `session_generation` is copied into every session at sign-in; bumping it ends every
    session the user has, in every process, at their next request.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="account_state",
    )
    session_generation = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user"]


class LoginFailure(models.Model):
    """One failed password or code for a known staff account, counted towards lockout."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="login_failures"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["user", "at"], name="security_auth_failure_user_at")]


class RateLimitHit(models.Model):
    """One counted request in a sliding window. `bucket` is a keyed digest of scope + key,
    so a username typed by mistake (perhaps a patient's name) is never stored."""

    bucket = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["bucket", "at"], name="security_auth_ratelimit_b_at")]
