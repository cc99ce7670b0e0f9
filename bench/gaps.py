#!/usr/bin/env python3
"""Benchmark the care-gap lifecycle (careloop.caregaps.gaps) beside the evaluation.

Over the synthetic practice of `careloop demo --patients N --seed 1 --as-of AS_OF`, on
PostgreSQL (database `careloop_gaps_bench_<N>`, made anew) or SQLite, every measure
(the nine CMS measures and the practice gaps) is evaluated over the whole population
twice: the first pass opens every gap (and writes its timeline entry), the second is
the steady state (a re-evaluation that changes nothing). Per measure: the evaluation's
own seconds (MeasureRun.seconds), the gap synchronisation's seconds (the rest of the
transaction: the run's wall time minus its evaluation), and the gaps opened. Then one
patient's refresh (what an import does), median of `--one-patient` patients.

    python bench/gaps.py [--patients 10000] [--engine postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AS_OF = "2026-11-01"
PG = os.environ.get("CARELOOP_BENCH_POSTGRES_HOST", "127.0.0.1:5432")


def _inner(one_patient: int, only: list[str]) -> None:
    import datetime
    import random

    import django

    django.setup()
    from django.db import connection, transaction

    from careloop.caregaps.evaluate import Period, caregaps_refresh, measure_evaluate
    from careloop.caregaps.gaps import care_gaps_after_run
    from careloop.caregaps.measure import measures
    from careloop.caregaps.models import CareGap
    from careloop.patients.models import Patient, TimelineEvent

    as_of = datetime.date.fromisoformat(AS_OF)
    period = Period.year(as_of.year)
    patients = Patient.objects.count()
    print(f"{connection.vendor}, {patients} patients, as of {as_of}")
    chosen = [m for m in measures() if not only or m in only]
    for label in ("first pass (opens the gaps)", "second pass (steady state)"):
        print(f"\n{label}\n{'measure':<10} {'eval s':>8} {'gaps s':>8} {'open gaps':>10}")
        totals = [0.0, 0.0]
        for measure_id in chosen:
            began = time.perf_counter()
            run = measure_evaluate(measure=measure_id, period=period, as_of=as_of)
            wall = time.perf_counter() - began
            evaluation = run.seconds or 0.0
            open_gaps = CareGap.objects.filter(measure=measure_id, state="open").count()
            totals[0] += evaluation
            totals[1] += wall - evaluation
            print(f"{measure_id:<10} {evaluation:8.2f} {wall - evaluation:8.2f} {open_gaps:10d}")
        print(f"{'all':<10} {totals[0]:8.2f} {totals[1]:8.2f}")
    # The synchronisation alone, for the last run of each measure (nothing to change).
    alone = []
    for measure_id in chosen:
        from careloop.caregaps.models import MeasureRun

        run = MeasureRun.objects.filter(measure=measure_id).order_by("-started_at").first()
        assert run is not None
        began = time.perf_counter()
        with transaction.atomic():
            care_gaps_after_run(run=run)
        alone.append(time.perf_counter() - began)
    print(f"\nsync alone, steady state, all measures: {sum(alone):.2f} s")
    ids = list(Patient.objects.values_list("id", flat=True))
    sample = random.Random(1).sample(ids, min(one_patient, len(ids)))
    times = []
    for pid in sample:
        began = time.perf_counter()
        caregaps_refresh(patient_ids=[pid])
        times.append((time.perf_counter() - began) * 1000)
    print(
        f"one patient's refresh, all measures with gaps: median {statistics.median(times):.1f} ms,"
        f" max {max(times):.1f} ms ({len(times)} patients)"
    )
    print(
        f"gaps: {CareGap.objects.count()}, timeline entries: "
        f"{TimelineEvent.objects.filter(kind='care_gap').count()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--one-patient", type=int, default=20)
    parser.add_argument("--measures", default="", help="comma-separated ids (default: all)")
    parser.add_argument("--reuse", action="store_true", help="keep the practice made before")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        _inner(args.one_patient, [m for m in args.measures.upper().split(",") if m])
        return
    work = Path(tempfile.mkdtemp(prefix="careloop-gaps-bench-"))
    env = dict(os.environ, CARELOOP_ENV="test", CARELOOP_VAR_DIR=str(work / "var"))
    env["DJANGO_SETTINGS_MODULE"] = "careloop.settings"
    if args.engine == "postgresql":
        name = f"careloop_gaps_bench_{args.patients}"
        if not args.reuse:
            admin = f"postgres://{PG}/postgres"
            for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
                subprocess.run(["psql", admin, "-qc", sql], check=True)
        env["CARELOOP_DATABASE_URL"] = f"postgres://{PG}/{name}"
    else:
        db = HERE / "out" / f"gaps-{args.patients}.db"
        db.parent.mkdir(exist_ok=True)
        if not args.reuse:
            db.unlink(missing_ok=True)
        env["CARELOOP_DATABASE_URL"] = f"sqlite:///{db}"
    careloop = [sys.executable, "-m", "careloop"]
    subprocess.run([*careloop, "migrate", "-v0"], env=env, check=True)
    if not args.reuse:
        began = time.perf_counter()
        subprocess.run(
            [*careloop, "demo", "--patients", str(args.patients), "--seed", "1", "--as-of", AS_OF],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"practice made in {time.perf_counter() - began:.0f} s", flush=True)
    inner = [sys.executable, "-u", __file__, "--inner", "--one-patient", str(args.one_patient)]
    inner += ["--measures", args.measures]
    subprocess.run(inner, env=env, check=True)


if __name__ == "__main__":
    main()
