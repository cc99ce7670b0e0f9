"""The periodic sweep: due-work scans that later features hang on the worker.

A sweep job is a function registered with `@sweep_job(name, every=seconds)` in an app's
`sweeps.py` (autodiscovered). Every worker runs `sweep_due(worker_id=...)` every few
seconds; each due job runs on exactly one worker at a time, because it runs only after
a conditional UPDATE gave that worker its lease. Jobs find their own due rows (outbox
messages, journey steps, expired leases...) and must be idempotent: a job whose worker
died is simply run again once its lease has expired.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import F, Q
from django.utils.module_loading import autodiscover_modules

from careloop.core.clock import now
from careloop.core.models import SweepJob

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    name: str
    every: datetime.timedelta
    lease: datetime.timedelta
    run: Callable[[], object]


REGISTRY: dict[str, JobSpec] = {}


def sweep_job(
    name: str, *, every: float, lease: float | None = None
) -> Callable[[Callable[[], object]], Callable[[], object]]:
    """Register `func` to run about every `every` seconds on one of the workers."""

    def register(func: Callable[[], object]) -> Callable[[], object]:
        REGISTRY[name] = JobSpec(
            name=name,
            every=datetime.timedelta(seconds=every),
            lease=datetime.timedelta(seconds=lease if lease is not None else max(60.0, 4 * every)),
            run=func,
        )
        return func

    return register


def discover() -> None:
    """Import every app's `sweeps` module (once, at app loading) so its jobs register."""
    autodiscover_modules("sweeps")


def registered() -> dict[str, JobSpec]:
    return REGISTRY


def _ensure_rows(specs: list[JobSpec]) -> None:
    known = set(
        SweepJob.objects.filter(name__in=[s.name for s in specs]).values_list("name", flat=True)
    )
    missing = [SweepJob(name=s.name, next_run_at=now()) for s in specs if s.name not in known]
    if missing:
        SweepJob.objects.bulk_create(missing, ignore_conflicts=True)


def _claim(spec: JobSpec, *, worker_id: str) -> int | None:
    """Take the job's lease if it is due and free; the new fencing token, or None."""
    at = now()
    claimed = (
        SweepJob.objects.filter(name=spec.name, next_run_at__lte=at)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=at))
        .update(
            lease_owner=worker_id,
            lease_until=at + spec.lease,
            fencing_token=F("fencing_token") + 1,
            last_started_at=at,
        )
    )
    if claimed != 1:
        return None
    return SweepJob.objects.values_list("fencing_token", flat=True).get(name=spec.name)


def _finish(spec: JobSpec, *, worker_id: str, token: int, outcome: str, error: str = "") -> None:
    at = now()
    # Only the holder of the current token may record the run; a worker whose lease
    # expired and was taken over finishes silently.
    SweepJob.objects.filter(name=spec.name, lease_owner=worker_id, fencing_token=token).update(
        lease_owner="",
        lease_until=None,
        next_run_at=at + spec.every,
        last_finished_at=at,
        last_outcome=outcome,
        last_error=error[:200],
        runs=F("runs") + 1,
    )


def _run(spec: JobSpec, *, worker_id: str, token: int) -> None:
    try:
        spec.run()
    except Exception as error:
        # The job's own rows stay due; it runs again next time. Record the class of
        # error only: exception messages may carry values we must not store.
        logger.exception("sweep job %s failed", spec.name)
        _finish(
            spec, worker_id=worker_id, token=token, outcome="failed", error=type(error).__name__
        )
    else:
        _finish(spec, worker_id=worker_id, token=token, outcome="ok")


def sweep_now(name: str, *, worker_id: str = "nudge") -> bool:
    """Make a job due now and run it here unless another worker holds it."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise KeyError(f"no sweep job named {name!r}")
    _ensure_rows([spec])
    SweepJob.objects.filter(name=name).update(next_run_at=now())
    token = _claim(spec, worker_id=worker_id)
    if token is None:
        return False
    _run(spec, worker_id=worker_id, token=token)
    return True


def sweep_due(*, worker_id: str, should_stop: Callable[[], bool] = lambda: False) -> list[str]:
    """Run every registered job that is due and not held by another worker; their names."""
    specs = sorted(REGISTRY.values(), key=lambda spec: spec.name)
    _ensure_rows(specs)
    ran: list[str] = []
    for spec in specs:
        if should_stop():
            break
        token = _claim(spec, worker_id=worker_id)
        if token is None:
            continue
        _run(spec, worker_id=worker_id, token=token)
        ran.append(spec.name)
    return ran
