"""Platform state shared by every process: periodic sweep jobs and worker heartbeats."""

from __future__ import annotations

from django.db import models


class SweepJob(models.Model):
    """When a periodic sweep job is next due, and which worker holds it right now.

    Many workers on many hosts run the same sweep loop; a job runs on whichever worker
    wins the conditional UPDATE that takes its lease (careloop.core.sweep).
    """

    name = models.CharField(max_length=80, primary_key=True)
    next_run_at = models.DateTimeField()
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Bumped on every claim; a worker whose lease expired cannot record a stale finish.
    fencing_token = models.PositiveBigIntegerField(default=0)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    runs = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]


class WorkerHeartbeat(models.Model):
    """One row per running worker process, refreshed on every loop."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=120)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    tasks_run = models.PositiveBigIntegerField(default=0)
    sweeps_run = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-seen_at"]
