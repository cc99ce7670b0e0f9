"""Tasks of the platform. Tasks are nudges: arguments are names and ids, never PHI."""

from __future__ import annotations

from django_tasks import task

from careloop.core.sweep import sweep_now


@task()
def sweep_job_nudge(job_name: str) -> bool:
    """Run one sweep job now rather than at its next turn (if no worker holds it)."""
    return sweep_now(job_name)
