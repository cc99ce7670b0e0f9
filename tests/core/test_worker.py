from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from careloop.core import sweep
from careloop.core.clock import frozen, now
from careloop.core.models import SweepJob

START = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def counting_job() -> Iterator[list[datetime.datetime]]:
    runs: list[datetime.datetime] = []
    saved = dict(sweep.REGISTRY)
    sweep.REGISTRY.clear()
    sweep.sweep_job("test.count", every=60)(lambda: runs.append(now()))
    yield runs
    sweep.REGISTRY.clear()
    sweep.REGISTRY.update(saved)


@pytest.mark.django_db
def test_a_due_job_runs_once_per_interval(counting_job: list[datetime.datetime]) -> None:
    with frozen(START):
        assert sweep.sweep_due(worker_id="w1") == ["test.count"]
        assert sweep.sweep_due(worker_id="w2") == []
    with frozen(START + datetime.timedelta(seconds=61)):
        assert sweep.sweep_due(worker_id="w2") == ["test.count"]
    assert len(counting_job) == 2
    job = SweepJob.objects.get(name="test.count")
    assert job.runs == 2
    assert job.last_outcome == "ok"
    assert job.lease_owner == ""


@pytest.mark.django_db
def test_a_job_held_by_another_worker_is_not_run_until_its_lease_expires(
    counting_job: list[datetime.datetime],
) -> None:
    spec = sweep.REGISTRY["test.count"]
    with frozen(START):
        sweep._ensure_rows([spec])
        # A worker takes the lease and then dies without finishing.
        assert sweep._claim(spec, worker_id="dead-worker") is not None
        assert sweep.sweep_due(worker_id="w2") == []
    with frozen(START + spec.lease + datetime.timedelta(seconds=1)):
        assert sweep.sweep_due(worker_id="w2") == ["test.count"]
    assert len(counting_job) == 1


@pytest.mark.django_db
def test_a_failing_job_is_recorded_and_runs_again_later() -> None:
    saved = dict(sweep.REGISTRY)
    sweep.REGISTRY.clear()
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("temporary")

    sweep.sweep_job("test.flaky", every=30)(flaky)
    try:
        with frozen(START):
            sweep.sweep_due(worker_id="w1")
        job = SweepJob.objects.get(name="test.flaky")
        assert (job.last_outcome, job.last_error) == ("failed", "RuntimeError")
        with frozen(START + datetime.timedelta(seconds=31)):
            sweep.sweep_due(worker_id="w1")
        job.refresh_from_db()
        assert job.last_outcome == "ok"
        assert len(attempts) == 2
    finally:
        sweep.REGISTRY.clear()
        sweep.REGISTRY.update(saved)


def _query(env: dict[str, str], code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "careloop", "shell", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_worker_process_sweeps_runs_tasks_and_stops_on_sigterm(scratch_env: dict[str, str]) -> None:
    enqueue = (
        "from careloop.core.tasks import sweep_job_nudge; "
        "print(sweep_job_nudge.enqueue('core.prune').id)"
    )
    task_id = _query(scratch_env, enqueue)
    worker = subprocess.Popen(
        [sys.executable, "-m", "careloop", "worker", "--sweep-every", "0.5"],
        env=scratch_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = ""
        sweeps = "0"
        while time.monotonic() < deadline:
            status = _query(
                scratch_env,
                "from django_tasks_db.models import DBTaskResult; "
                f"print(DBTaskResult.objects.get(id='{task_id}').status)",
            )
            sweeps = _query(
                scratch_env,
                "from careloop.core.models import WorkerHeartbeat as H; "
                "print(sum(H.objects.values_list('sweeps_run', flat=True)))",
            )
            if status == "SUCCESSFUL" and int(sweeps) >= 2:
                break
            time.sleep(0.5)
        assert status == "SUCCESSFUL"
        assert int(sweeps) >= 2, "the sweep loop should have run repeatedly"
        assert (
            _query(
                scratch_env,
                "from careloop.core.models import SweepJob; "
                "print(SweepJob.objects.get(name='core.prune').last_outcome)",
            )
            == "ok"
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert (
        _query(
            scratch_env,
            "from careloop.core.models import WorkerHeartbeat as H; print(H.objects.count())",
        )
        == "0"
    )
