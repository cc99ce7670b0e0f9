#!/usr/bin/env python3
"""Benchmark the care-gap measures: seconds per measure, all nine, and one patient.

Over a synthetic practice from `careloop demo` (seed 1, as of AS_OF), kept between
runs because the 1,000,000-patient one takes half an hour to make: PostgreSQL in the
scratch database `careloop_bench_measures` (1M) or `careloop_bench_measures_<n>`
(other sizes), SQLite in <cache>/sqlite-<n>.db. A database is generated only when it
is missing or holds fewer patients; it is migrated before every run.

For each engine: every measure evaluated over the whole population for the year of
AS_OF with statuses as of AS_OF (each INSERT ... SELECT writes memberships and rolling
statuses), twice (cold: first run after migration; warm: again), then one patient's
nine measures re-evaluated through `caregaps_refresh` (the profile page / ingest
path), the median of 20 patients.

    python bench/measures.py [--postgres 1000000] [--sqlite 100000] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_generate import AS_OF, PG_MAINTENANCE, _pg_admin, base_env, careloop, machine

# Kept between runs (the 1M practice takes half an hour to make).
CACHE = Path(tempfile.gettempdir()) / "careloop-bench-measures"


def pg_name(patients: int) -> str:
    return (
        "careloop_bench_measures"
        if patients == 1_000_000
        else f"careloop_bench_measures_{patients // 1000}k"
    )


def pg_url(name: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(PG_MAINTENANCE)
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


def ensure(url: str, patients: int, env: dict[str, str], *, create_pg: str | None) -> None:
    """Migrate; generate the practice when the database holds fewer patients."""
    if create_pg is not None:
        try:
            _pg_admin(f"CREATE DATABASE {create_pg}")
        except Exception as exc:  # noqa: BLE001 - it exists already
            if "already exists" not in str(exc):
                raise
    subprocess.run([*careloop(), "migrate", "-v0"], env=env, check=True)
    have = int(worker_call(env, ["count"])["patients"])
    if have < patients:
        print(f"  generating {patients} patients into {url} (have {have})", flush=True)
        subprocess.run(
            [*careloop(), "demo", "--patients", str(patients), "--seed", "1", "--as-of", AS_OF],
            env=env,
            check=True,
        )


def worker_call(env: dict[str, str], args: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the worker (inside one engine's environment) ------------------------------------


def _setup() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careloop.settings")
    django.setup()


def work_count() -> dict[str, object]:
    _setup()
    from careloop.patients.models import Patient

    return {"patients": Patient.objects.count()}


def work_evaluate(passes: int) -> dict[str, object]:
    """Each measure `passes` times over the population (cold, then warm); then one
    patient's nine measures, 20 times."""
    _setup()
    import datetime

    from careloop.caregaps.evaluate import Period, caregaps_refresh, measure_evaluate
    from careloop.caregaps.measure import measures
    from careloop.caregaps.models import MeasureRun, PatientMeasureResult
    from careloop.patients.models import Patient

    as_of = datetime.date.fromisoformat(AS_OF)
    period = Period.year(as_of.year)
    result: dict[str, object] = {"patients": Patient.objects.count()}
    per_measure: dict[str, list[float]] = {}
    rates: dict[str, dict[str, int]] = {}
    for attempt in range(passes):
        for measure_id in measures():
            began = time.perf_counter()
            run = measure_evaluate(measure=measure_id, period=period, as_of=as_of)
            per_measure.setdefault(measure_id, []).append(time.perf_counter() - began)
            if attempt == passes - 1:
                rows = PatientMeasureResult.objects.filter(run=run, group=1)
                rates[measure_id] = {
                    "initial_population": rows.count(),
                    "numerator": rows.filter(numerator=True).count(),
                    "denominator_exclusion": rows.filter(denominator_exclusion=True).count(),
                    "due_soon": rows.filter(status="due_soon").count(),
                    "overdue": rows.filter(status="overdue").count(),
                }
            # Keep the database from growing run after run: only the last run stays.
            MeasureRun.objects.filter(measure=measure_id).exclude(pk=run.pk).delete()
    result["seconds"] = per_measure
    result["rates"] = rates
    ids = list(Patient.objects.order_by("?").values_list("id", flat=True)[:20])
    one: list[float] = []
    for pid in ids:
        began = time.perf_counter()
        caregaps_refresh(patient_ids=[pid])
        one.append(time.perf_counter() - began)
    result["one_patient_ms"] = statistics.median(one) * 1000
    result["one_patient_max_ms"] = max(one) * 1000
    return result


# --- the driver ------------------------------------------------------------------------


def bench(label: str, patients: int, env: dict[str, str], passes: int) -> dict[str, object]:
    print(f"{label}, {patients} patients: evaluating", flush=True)
    result = worker_call(env, ["evaluate", str(passes)])
    result["label"] = label
    return result


def report(results: list[dict[str, object]]) -> None:
    print(f"\nMachine: {machine()}; load average {os.getloadavg()[0]:.2f} (1 min)")
    for r in results:
        seconds: dict[str, list[float]] = r["seconds"]  # type: ignore[assignment]
        rates: dict[str, dict[str, int]] = r["rates"]  # type: ignore[assignment]
        cold = sum(s[0] for s in seconds.values())
        warm = sum(s[-1] for s in seconds.values())
        print(f"\n{r['label']}, {r['patients']} patients")
        print(
            "| measure | cold s | warm s | initial pop. | met % | excluded | due soon | overdue |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for measure_id, runs in seconds.items():
            first, second = runs[0], runs[-1]
            rate = rates[measure_id]
            ip = rate["initial_population"] or 1
            met = 100 * rate["numerator"] / max(1, ip - rate["denominator_exclusion"])
            print(
                f"| {measure_id} | {first:.2f} | {second:.2f} | {rate['initial_population']} "
                f"| {met:.0f} | {rate['denominator_exclusion']} | {rate['due_soon']} "
                f"| {rate['overdue']} |"
            )
        print(f"| all nine | {cold:.2f} | {warm:.2f} | | | | | |")
        print(
            f"one patient, nine measures (caregaps_refresh): median "
            f"{r['one_patient_ms']:.1f} ms, max {r['one_patient_max_ms']:.1f} ms"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        if sys.argv[2] == "count":
            print(json.dumps(work_count()))
        else:
            print(json.dumps(work_evaluate(int(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", type=int, default=1_000_000, help="patients; 0 skips")
    parser.add_argument("--sqlite", type=int, default=100_000, help="patients; 0 skips")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--passes", type=int, default=2, help="population runs per measure")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    results = []
    if args.sqlite:
        url = f"sqlite:///{args.cache / f'sqlite-{args.sqlite}.db'}"
        env = base_env(args.cache / "var", url)
        ensure(url, args.sqlite, env, create_pg=None)
        results.append(bench("SQLite", args.sqlite, env, args.passes))
    if args.postgres:
        name = pg_name(args.postgres)
        url = pg_url(name)
        env = base_env(args.cache / "var", url)
        ensure(url, args.postgres, env, create_pg=name)
        results.append(bench("PostgreSQL", args.postgres, env, args.passes))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
