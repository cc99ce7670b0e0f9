"""The security app's sweep jobs."""

from __future__ import annotations

from careloop.core.sweep import sweep_job
from careloop.security.audit import audit_seal


@sweep_job("security.audit_seal", every=1)
def seal_audit_events() -> None:
    """Chain the audit events committed since the last run (careloop.security.audit)."""
    audit_seal()
