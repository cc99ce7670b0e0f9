"""Shared fixtures for the whole suite."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from careloop.security import crypto


@pytest.fixture(autouse=True)
def _fresh_keyring() -> None:
    # Each test database has its own data keys; never reuse another database's keys.
    crypto.keyring.reset()


@pytest.fixture(autouse=True)
def _clock_released() -> Iterator[None]:
    """A test must give the clock back: one left pinned (a `clock.frozen` block a
    thread left late) would make every later test on the worker run at that moment."""
    from careloop.core import clock

    yield
    pinned = clock._frozen
    if pinned is not None:
        clock._frozen = None
        pytest.fail(f"the test left the clock pinned at {pinned.isoformat()}")


@pytest.fixture(autouse=True, scope="session")
def _flush_through_audit_triggers() -> Iterator[None]:
    """Let transactional tests' table flush pass the audit log's append-only triggers.

    pytest-django empties every table after a `transaction=True` test (Django's
    TransactionTestCase._fixture_teardown runs `flush`), which the triggers refuse. The
    flush runs inside the maintenance switch, on the same connection, and nothing else.
    """
    from django.test import TransactionTestCase

    from careloop.security.audit import audit_maintenance

    original = TransactionTestCase._fixture_teardown

    def fixture_teardown(self: TransactionTestCase) -> None:
        with contextlib.ExitStack() as stack:
            for alias in self._databases_names(include_mirrors=False):
                stack.enter_context(audit_maintenance(using=alias))
            original(self)

    TransactionTestCase._fixture_teardown = fixture_teardown  # type: ignore[method-assign]
    try:
        yield
    finally:
        TransactionTestCase._fixture_teardown = original  # type: ignore[method-assign]


def _postgres_admin_url() -> str:
    db = settings.DATABASES["default"]
    user = f"{db['USER']}@" if db["USER"] else ""
    host = db["HOST"] or ""
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{user}{host}{port}"


@pytest.fixture
def scratch_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a `careloop` subprocess on its own migrated database.

    The database uses the engine of the current test run (a SQLite file, or a new
    PostgreSQL database that is dropped afterwards), so process-level behaviour
    (servers, workers) is tested on both engines.
    """
    env = dict(os.environ)
    env["CARELOOP_VAR_DIR"] = str(tmp_path / "var")
    env["CARELOOP_ENV"] = "test"
    env.pop("DJANGO_SETTINGS_MODULE", None)
    dropper = None
    if settings.DATABASE.engine == "postgresql":
        import psycopg

        name = f"careloop_scratch_{uuid.uuid4().hex[:12]}"
        admin = _postgres_admin_url()
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["CARELOOP_DATABASE_URL"] = f"{admin.replace('postgresql://', 'postgres://')}/{name}"

        def dropper() -> None:
            with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    else:
        env["CARELOOP_DATABASE_URL"] = f"sqlite:///{tmp_path / 'careloop.db'}"
    subprocess.run(
        [sys.executable, "-m", "careloop", "migrate", "-v0"], env=env, check=True, timeout=120
    )
    try:
        yield env
    finally:
        if dropper is not None:
            dropper()


def _shared_data() -> Path:
    """CARELOOP_SHARED_DATA, else ../shared/data beside the checkout, else the workplace's
    copy (a clean clone for CI may live anywhere)."""
    explicit = os.environ.get("CARELOOP_SHARED_DATA")
    if explicit:
        return Path(explicit)
    candidates = [
        Path(__file__).resolve().parents[2] / "shared" / "data",
        Path("/work/shared/data"),
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED_DATA = _shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The external test data (../shared/data: official eCQM cases, a Synthea export).

    Where it is absent the tests that need it skip, saying so; in CI it must be there.
    """
    if not (SHARED_DATA / "synthea100").is_dir() or not (SHARED_DATA / "ecqm").is_dir():
        message = f"external test data not found at {SHARED_DATA} (set CARELOOP_SHARED_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA
