"""The outreach app's sweep jobs."""

from __future__ import annotations

from careloop.core.sweep import sweep_job
from careloop.outreach.dispatch import dispatch_due


# The job lease outlasts a batch sent through a slow provider; each message has its
# own, shorter lease, so a worker that dies loses only its current claims.
@sweep_job("outreach.dispatch", every=2, lease=600)
def dispatch() -> None:
    """Send due messages and take up those whose worker's lease expired."""
    dispatch_due()
