#!/usr/bin/env python3
"""Benchmark `careloop import fhir`: resources per second and peak memory.

For each size (in resources) a synthetic practice is written as Bulk Data NDJSON by
`careloop demo --format ndjson` (cached under --cache), then imported into a fresh
SQLite file and a scratch PostgreSQL database (all production indexes, migrated
before the clock starts), three times:

- **empty**: into the empty database;
- **again**: the same files again (nothing changes: the idempotent re-import);
- **on top**: a second practice of the same size (another seed) on top of the first.

`--synthea` also imports the real 100-patient export in ../shared/data/synthea100.
Each import is its own process; its peak RSS is read from `wait4`.

    python bench/ingest.py --sizes 100000,1000000 [--engines sqlite,postgres] [--synthea]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from demo_generate import (
    AS_OF,
    PG_MAINTENANCE,
    _pg_admin,
    base_env,
    careloop,
    machine,
    postgres_reachable,
    run_measured,
)

PG_DB = "careloop_bench_ingest"
# Resources per demo patient (measured on the generator's output; used to size runs).
RESOURCES_PER_PATIENT = 34.5
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Result:
    engine: str
    data: str
    step: str
    resources: int
    seconds: float
    peak_rss_mib: float


def practice(cache: Path, resources: int, seed: int) -> tuple[Path, int]:
    patients = max(1, round(resources / RESOURCES_PER_PATIENT))
    out = cache / f"demo-{patients}-seed{seed}"
    if not (out / "manifest.json").is_file():
        env = base_env(cache / "var", f"sqlite:///{cache / 'unused.db'}")
        subprocess.run(
            [
                *careloop(),
                "demo",
                "--patients",
                str(patients),
                "--seed",
                str(seed),
                "--as-of",
                AS_OF,
                "--format",
                "ndjson",
                "--out",
                str(out),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    count = sum(1 for f in out.glob("*.ndjson") for _ in f.open("rb"))
    return out, count


def import_once(env: dict[str, str], folder: Path) -> tuple[float, float, int]:
    args = [*careloop(), "import", "fhir", str(folder), "--source", "bench"]
    seconds, rss = run_measured(args, env, quiet=True)
    return seconds, rss, 0


def engines(selected: set[str], work: Path) -> list[tuple[str, str]]:
    out = []
    if "sqlite" in selected:
        out.append(("SQLite (SQLCipher)", f"sqlite:///{work / 'bench.db'}"))
    if "postgres" in selected and postgres_reachable():
        parts = urlsplit(PG_MAINTENANCE)
        url = f"{parts.scheme}://{parts.netloc}/{PG_DB}" + (
            f"?{parts.query}" if parts.query else ""
        )
        out.append(("PostgreSQL 15", url))
    return out


def fresh(engine: str, url: str, work: Path) -> dict[str, str]:
    if engine.startswith("PostgreSQL"):
        _pg_admin(f"DROP DATABASE IF EXISTS {PG_DB}")
        _pg_admin(f"CREATE DATABASE {PG_DB}")
    else:
        db = Path(urlsplit(url).path)
        db.unlink(missing_ok=True)
    env = base_env(work / "var", url)
    subprocess.run([*careloop(), "migrate", "-v0"], env=env, check=True)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--steps", default="empty,again,on-top")
    parser.add_argument("--synthea", action="store_true")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "careloop-bench-ndjson"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    steps = set(args.steps.split(","))
    print(f"machine: {machine()}", flush=True)
    results: list[Result] = []
    work = Path(tempfile.mkdtemp(prefix="careloop-bench-ingest-"))
    try:
        for engine, url in engines(set(args.engines.split(",")), work):
            if args.synthea:
                env = fresh(engine, url, work)
                folder = SHARED / "synthea100"
                count = sum(1 for f in folder.glob("*.ndjson") for _ in f.open("rb"))
                for step in ("empty", "again"):
                    print(f"  {engine} synthea100 {step} ...", flush=True)
                    seconds, rss, _ = import_once(env, folder)
                    results.append(Result(engine, "synthea100", step, count, seconds, rss))
            for size in [int(s) for s in args.sizes.split(",") if s]:
                first, count = practice(args.cache, size, seed=1)
                env = fresh(engine, url, work)
                plan = [("empty", first), ("again", first)]
                if "on-top" in steps:
                    plan.append(("on-top", practice(args.cache, size, seed=2)[0]))
                for step, folder in plan:
                    if step not in steps and step != "empty":
                        continue
                    print(f"  {engine} {count:,} resources {step} ...", flush=True)
                    seconds, rss, _ = import_once(env, folder)
                    results.append(Result(engine, f"demo {count:,}", step, count, seconds, rss))
    finally:
        if any(e.startswith("PostgreSQL") for e, _ in engines(set(args.engines.split(",")), work)):
            _pg_admin(f"DROP DATABASE IF EXISTS {PG_DB}")
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print()
    print(f"machine: {machine()}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| engine | data | step | resources | seconds | resources/s | peak RSS |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.engine} | {r.data} | {r.step} | {r.resources:,} | {r.seconds:.1f} | "
            f"{r.resources / r.seconds:,.0f} | {r.peak_rss_mib:.0f} MiB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
