"""The platform's own sweep jobs."""

from __future__ import annotations

import datetime

from careloop.core.clock import now
from careloop.core.models import WorkerHeartbeat
from careloop.core.sweep import sweep_job

TASK_RESULT_RETENTION = datetime.timedelta(days=7)
DEAD_WORKER_AFTER = datetime.timedelta(hours=1)


@sweep_job("core.prune", every=3600)
def prune() -> None:
    """Forget finished task results after a week and workers gone for an hour."""
    from django_tasks_db.models import DBTaskResult

    cutoff = now() - TASK_RESULT_RETENTION
    DBTaskResult.objects.filter(finished_at__lt=cutoff).delete()
    WorkerHeartbeat.objects.filter(seen_at__lt=now() - DEAD_WORKER_AFTER).delete()
