#!/usr/bin/env python3
"""Benchmark `careloop demo`: patients per second and peak memory, per format and engine.

Each run is a separate `careloop demo` process (so its peak RSS is its own, read from
`wait4`), into a fresh SQLite file in a temporary directory, a scratch PostgreSQL
database `careloop_bench` (created and dropped here, when a server is reachable), and
an NDJSON directory. Migrations run before the clock starts.

    python bench/demo_generate.py --sizes 10000,100000 [--formats db,ndjson] [--keep]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

AS_OF = "2026-11-01"
PG_MAINTENANCE = os.environ.get("CARELOOP_BENCH_POSTGRES", "postgres:///postgres")
PG_DB = "careloop_bench"


@dataclass(frozen=True)
class Result:
    fmt: str
    engine: str
    patients: int
    seconds: float
    peak_rss_mib: float
    output_mib: float


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{mem_kib / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        ram = "unknown RAM"
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram}; Python {platform.python_version()}; "
        f"{platform.platform()}"
    )


def careloop() -> list[str]:
    return [sys.executable, "-m", "careloop"]


def run_measured(
    args: list[str], env: dict[str, str], *, quiet: bool = False
) -> tuple[float, float]:
    """Run one command; return (wall seconds, peak RSS in MiB) of that process alone."""
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args[2:])} failed: {err.strip()[-500:]}")
    print(
        f"    {out.strip().splitlines()[-1][:200] if quiet and out.strip() else out.strip()[:200]}",
        flush=True,
    )
    return seconds, usage.ru_maxrss / 1024


def size_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def base_env(var_dir: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CARELOOP_VAR_DIR=str(var_dir), CARELOOP_DATABASE_URL=database_url, CARELOOP_ENV="test"
    )
    return env


def demo_args(patients: int, *extra: str) -> list[str]:
    return [
        *careloop(),
        "demo",
        "--patients",
        str(patients),
        "--seed",
        "1",
        "--as-of",
        AS_OF,
        *extra,
    ]


def bench_sqlite(patients: int, work: Path) -> Result:
    db = work / "bench.db"
    env = base_env(work / "var", f"sqlite:///{db}")
    subprocess.run([*careloop(), "migrate", "-v0"], env=env, check=True)
    seconds, rss = run_measured(demo_args(patients), env)
    return Result("db", "SQLite (SQLCipher)", patients, seconds, rss, size_mib(db))


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_MAINTENANCE, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True


def _pg_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_MAINTENANCE, autocommit=True) as conn:
        conn.execute(statement)


def bench_postgres(patients: int, work: Path) -> Result:
    from urllib.parse import urlsplit

    parts = urlsplit(PG_MAINTENANCE)
    # Built by hand: urlunsplit drops the "//" of a socket URL with an empty host.
    url = f"{parts.scheme}://{parts.netloc}/{PG_DB}" + (f"?{parts.query}" if parts.query else "")
    _pg_admin(f"DROP DATABASE IF EXISTS {PG_DB}")
    _pg_admin(f"CREATE DATABASE {PG_DB}")
    try:
        env = base_env(work / "var", url)
        subprocess.run([*careloop(), "migrate", "-v0"], env=env, check=True)
        seconds, rss = run_measured(demo_args(patients), env)
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute(f"SELECT pg_database_size('{PG_DB}')").fetchone()
        size = (row[0] if row else 0) / 2**20
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {PG_DB}")
    return Result("db", "PostgreSQL (COPY)", patients, seconds, rss, size)


def bench_ndjson(patients: int, work: Path) -> Result:
    out = work / "ndjson"
    env = base_env(work / "var", f"sqlite:///{work / 'unused.db'}")
    seconds, rss = run_measured(demo_args(patients, "--format", "ndjson", "--out", str(out)), env)
    return Result("ndjson", "files (orjson)", patients, seconds, rss, size_mib(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--formats", default="db,ndjson")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    formats = set(args.formats.split(","))
    with_pg = "db" in formats and not args.no_postgres and postgres_reachable()
    print(f"machine: {machine()}", flush=True)
    results: list[Result] = []
    for patients in sizes:
        runs = []
        if "db" in formats:
            runs.append(bench_sqlite)
            if with_pg:
                runs.append(bench_postgres)
        if "ndjson" in formats:
            runs.append(bench_ndjson)
        for run in runs:
            work = Path(tempfile.mkdtemp(prefix="careloop-bench-"))
            print(f"  {run.__name__} {patients} ...", flush=True)
            try:
                results.append(run(patients, work))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"machine: {machine()}")
    print(
        f"{'format':<7} {'engine':<20} {'patients':>9} {'seconds':>8} {'patients/s':>10} "
        f"{'peak RSS MiB':>12} {'output MiB':>10}"
    )
    for r in results:
        print(
            f"{r.fmt:<7} {r.engine:<20} {r.patients:>9} {r.seconds:>8.1f} "
            f"{r.patients / r.seconds:>10.0f} {r.peak_rss_mib:>12.0f} {r.output_mib:>10.0f}"
        )
    if "db" in formats and not with_pg:
        print("PostgreSQL: not reachable, not measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
