"""`careloop worker`: runs queued tasks and the periodic sweep, and stops gracefully.

Tasks come from the Django Tasks database backend (django-tasks-db): a ready row is
locked with `SELECT ... FOR UPDATE SKIP LOCKED` (an exclusive transaction on SQLite)
and marked running, so several workers on one database never take the same task.
Between tasks the worker runs `sweep_due` every `sweep_every` seconds. On SIGTERM or
SIGINT it finishes what it is doing, takes nothing new and exits 0; a second signal
exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import Any

from django.db import OperationalError, close_old_connections
from django.db.models import F
from django.utils.crypto import get_random_string

from careloop.core import shutdown
from careloop.core.clock import now
from careloop.core.models import WorkerHeartbeat
from careloop.core.sweep import sweep_due

logger = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        *,
        sweep_every: float,
        poll_interval: float = 1.0,
        queues: list[str] | None = None,
        burst: bool = False,
    ) -> None:
        self.worker_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{get_random_string(8)}"
        self.sweep_every = sweep_every
        self.poll_interval = poll_interval
        self.queues = queues or ["default"]
        self.burst = burst
        self._stop = threading.Event()
        self._busy = False
        self._next_sweep = 0.0

    # --- signals ----------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if shutdown.requested.is_set():
            # Asked to stop while still starting up: stop before taking any work.
            self._stop.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop.is_set():
            logger.warning("second %s: stopping now", signal.Signals(signum).name)
            os._exit(1)
        logger.info(
            "%s received: finishing the current item, then stopping",
            signal.Signals(signum).name,
        )
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        self._register()
        logger.info("worker %s started", self.worker_id)
        try:
            while not self.stopping:
                close_old_connections()
                did_work = False
                try:
                    if time.monotonic() >= self._next_sweep:
                        self._next_sweep = time.monotonic() + self.sweep_every
                        did_work = bool(self._sweep())
                    if not self.stopping and self._run_one_task():
                        did_work = True
                    self._beat()
                except OperationalError:
                    # The database went away or is locked; back off and try again.
                    logger.warning("database unavailable; retrying", exc_info=True)
                    close_old_connections()
                    self._stop.wait(self.poll_interval)
                    continue
                if self.burst and not did_work:
                    break
                if not did_work:
                    self._stop.wait(
                        min(self.poll_interval, max(0.0, self._next_sweep - time.monotonic()))
                    )
        finally:
            self._unregister()
            logger.info("worker %s stopped", self.worker_id)

    def _sweep(self) -> list[str]:
        ran = sweep_due(worker_id=self.worker_id, should_stop=lambda: self.stopping)
        WorkerHeartbeat.objects.filter(worker_id=self.worker_id).update(
            sweeps_run=F("sweeps_run") + 1
        )
        return ran

    def _run_one_task(self) -> bool:
        from django_tasks_db.management.commands.db_worker import Worker as TaskRunner
        from django_tasks_db.models import DBTaskResult
        from django_tasks_db.utils import exclusive_transaction

        tasks = DBTaskResult.objects.ready().filter(
            backend_name="default", queue_name__in=self.queues
        )
        with exclusive_transaction(tasks.db):
            task_result = tasks.get_locked()
            if task_result is None:
                return False
            task_result.claim(self.worker_id)
        runner: Any = TaskRunner(
            queue_names=self.queues,
            interval=self.poll_interval,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=self.worker_id,
            excluded_queue_names=[],
        )
        runner.run_task(task_result)
        WorkerHeartbeat.objects.filter(worker_id=self.worker_id).update(
            tasks_run=F("tasks_run") + 1
        )
        return True

    # --- heartbeat ----------------------------------------------------------------------
    def _register(self) -> None:
        at = now()
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={
                "hostname": socket.gethostname()[:120],
                "pid": os.getpid(),
                "started_at": at,
                "seen_at": at,
            },
        )

    def _beat(self) -> None:
        WorkerHeartbeat.objects.filter(worker_id=self.worker_id).update(seen_at=now())

    def _unregister(self) -> None:
        try:
            WorkerHeartbeat.objects.filter(worker_id=self.worker_id).delete()
        except OperationalError:
            logger.warning("could not remove the heartbeat row; the prune sweep will")
