"""The outreach app's sweep jobs."""

from __future__ import annotations

from django.conf import settings

from careloop.core.sweep import sweep_job
from careloop.outreach.dispatch import dispatch_due


# The job lease outlasts a batch sent through a slow provider; each message has its
# own, shorter lease, so a worker that dies loses only its current claims.
@sweep_job("outreach.dispatch", every=2, lease=600)
def dispatch() -> None:
    """Send due messages and take up those whose worker's lease expired."""
    dispatch_due()


@sweep_job("outreach.journeys", every=5, lease=600)
def journeys() -> None:
    """Run the journey steps that are due (waits that ended, new enrollments)."""
    from careloop.outreach.journeys import enrollments_advance

    enrollments_advance(limit=settings.OUTREACH_DISPATCH_BATCH * 5)


@sweep_job("outreach.triggers", every=60, lease=600)
def triggers() -> None:
    """Enrol the patients of new events (bookings, no-shows, gaps coming due...)."""
    from careloop.outreach.triggers import journeys_scan

    journeys_scan()
