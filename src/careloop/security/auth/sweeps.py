"""Housekeeping for sign-in protection: old failures and rate-limit hits are forgotten."""

from __future__ import annotations

from careloop.core.sweep import sweep_job
from careloop.security.auth.lockout import failures_prune
from careloop.security.ratelimit import ratelimit_prune


@sweep_job("security.auth.prune", every=600)
def prune() -> None:
    failures_prune()
    ratelimit_prune()
