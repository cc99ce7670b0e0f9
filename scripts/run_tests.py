#!/usr/bin/env python3
"""`make test`: the whole suite on SQLite, then on PostgreSQL when one is reachable.

PostgreSQL is taken from CARELOOP_TEST_POSTGRES_URL, else the local server on its
default socket or 127.0.0.1:5432. Under CI=true a missing PostgreSQL is a failure,
not a skip. Extra arguments go to pytest (e.g. `make test ARGS="-k consent"`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

DEFAULT_CANDIDATES = [
    "postgres:///careloop",
    "postgres://127.0.0.1:5432/careloop",
    "postgres://postgres@127.0.0.1:5432/careloop",
]


def reachable(url: str) -> bool:
    """Can we open a maintenance connection on this server (where test DBs are made)?"""
    try:
        import psycopg
    except ImportError:
        return False
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        return False
    maintenance = f"postgresql://{parts.netloc}/postgres" + (
        f"?{parts.query}" if parts.query else ""
    )
    try:
        with psycopg.connect(maintenance, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True


def find_postgres() -> str | None:
    explicit = os.environ.get("CARELOOP_TEST_POSTGRES_URL")
    if explicit:
        return explicit if reachable(explicit) else None
    for url in DEFAULT_CANDIDATES:
        if reachable(url):
            return url
    return None


def run_suite(label: str, database_url: str, args: list[str]) -> int:
    env = dict(os.environ)
    env["CARELOOP_DATABASE_URL"] = database_url
    env["CARELOOP_ENV"] = "test"
    env.setdefault("CARELOOP_VAR_DIR", tempfile.mkdtemp(prefix="careloop-test-"))
    print(f"\n=== careloop tests on {label} ===", flush=True)
    workers = os.environ.get("CARELOOP_TEST_WORKERS", "auto")
    command = [sys.executable, "-m", "pytest", "-n", workers, *args]
    return subprocess.call(command, env=env)  # noqa: S603


def main() -> int:
    args = sys.argv[1:]
    results: list[tuple[str, int]] = []
    var_dir = tempfile.mkdtemp(prefix="careloop-test-")
    os.environ.setdefault("CARELOOP_VAR_DIR", var_dir)
    results.append(("SQLite", run_suite("SQLite", f"sqlite:///{var_dir}/test.db", args)))
    postgres = find_postgres()
    in_ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    if postgres:
        results.append(("PostgreSQL", run_suite("PostgreSQL", postgres, args)))
    elif in_ci:
        print("\nPostgreSQL is not reachable, and under CI=true that is a failure.", flush=True)
        results.append(("PostgreSQL", 1))
    print("\n=== summary ===")
    for label, code in results:
        print(f"  {label:<11} {'passed' if code == 0 else 'FAILED'}")
    if not postgres and not in_ci:
        print(
            "  PostgreSQL  not run: no server answered (set CARELOOP_TEST_POSTGRES_URL "
            "or start PostgreSQL locally)"
        )
    return 0 if all(code == 0 for _, code in results) else 1


if __name__ == "__main__":
    sys.exit(main())
