#!/usr/bin/env python3
"""Benchmark the care-gap measures, with the CQL reference engine beside careloop.

careloop: over the synthetic practice of `careloop demo --patients N --seed 1 --as-of
AS_OF`, every measure evaluated over the whole population for the year of AS_OF with
statuses as of AS_OF (`measure_evaluate`), `--passes` times (the first is cold: a new
process and connection right after the migrations; SQLite's file is also dropped from
the OS page cache; PostgreSQL's shared buffers are not, the server is shared), then
one patient's measures re-evaluated through `caregaps_refresh` (what the profile page
and an import do) for `--one-patient` random patients: median and p95. Per measure:
seconds, patients/s, the population counts and the met rate, so the bench shows
whether the demo's rates are believable.

Practices are kept between runs (1,000,000 patients take about half an hour to make):
PostgreSQL in `careloop_bench_caregaps_<size>` (100k, 1m, ...), SQLite in
<cache>/sqlite-<n>.db. A practice is generated only when its database is missing,
holds fewer patients, or was left half-made; `--regenerate` rebuilds it (say, after the
demo changed: the bench says when the demo's source differs from the one that made
the practice). Migrations are applied before every run.

Reference engine: the CQL reference implementation (`cql-execution` with
`cql-exec-fhir`, Node) on the first `--reference` patients of the same practice,
exported as Bulk Data NDJSON (`careloop demo --format ndjson`). npm packages are
installed into <cache>/node. It needs the measures as ELM JSON: taken from
<cache>/elm/<ID>/ or from Library resources of the shared measure folder when they carry
application/elm+json, else translated from the CQL with `@cqframework/cql` (the
reference translator's JavaScript build), which needs the QI-Core 6.0.0 model info
(`--qicore-modelinfo FILE` or $CARELOOP_QICORE_MODELINFO). Without npm or without ELM
the column is skipped with a note saying why.

The machine (CPU, cores, RAM, load average before and after) and the versions are
printed and, with every figure, written as JSON to bench/out/caregaps-<time>.json.

    python bench/caregaps.py [--postgres 100000,1000000] [--sqlite 100000]
        [--reference 200] [--passes 2] [--one-patient 50] [--cache DIR] [--regenerate]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from demo_generate import AS_OF, PG_MAINTENANCE, _pg_admin, base_env, careloop, postgres_reachable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
# Kept between runs (the 1M practice takes half an hour to make).
CACHE = Path(tempfile.gettempdir()) / "careloop-bench-caregaps"
PG_PREFIX = "careloop_bench_caregaps"
SHARED_ECQM = REPO.parent / "shared" / "data" / "ecqm"
# The reference engine, pinned: the CQL execution engine, its FHIR data source, and the
# reference CQL-to-ELM translator's JavaScript build.
NPM_PACKAGES = {
    "cql-execution": "3.3.2",
    "cql-exec-fhir": "2.2.0",
    "@cqframework/cql": "5.3.0",
}
QICORE_MODELINFO = "qicore-modelinfo-6.0.0.xml"
REFERENCE_HARNESS = HERE / "caregaps_reference.mjs"


# --- the machine and the versions -------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu, ram_gib = "unknown CPU", 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + (" (with uncommitted changes)" if dirty else "")


def demo_fingerprint() -> str:
    """A hash of the demo generator's source: a practice made by another demo differs."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "careloop" / "demo").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# --- the practices ----------------------------------------------------------------------


def size_label(patients: int) -> str:
    if patients % 1_000_000 == 0:
        return f"{patients // 1_000_000}m"
    if patients % 1000 == 0:
        return f"{patients // 1000}k"
    return str(patients)


def pg_url(name: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(PG_MAINTENANCE)
    # Built by hand: urlunsplit drops the "//" of a socket URL with an empty host.
    return f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")


class Practices:
    """Which practice each database holds, in <cache>/practices.json: written when a
    generation finished, so a half-made one (interrupted) is told from a whole one."""

    def __init__(self, cache: Path) -> None:
        self.path = cache / "practices.json"
        self.known: dict[str, dict[str, Any]] = (
            json.loads(self.path.read_text()) if self.path.exists() else {}
        )

    def get(self, key: str) -> dict[str, Any] | None:
        return self.known.get(key)

    def put(self, key: str, entry: dict[str, Any] | None) -> None:
        # Read again first: two benches running at once (one engine each) must not
        # write back a file without the other's practices (that dropped a 1M one).
        if self.path.exists():
            self.known = json.loads(self.path.read_text())
        if entry is None:
            self.known.pop(key, None)
        else:
            self.known[key] = entry
        partial = self.path.with_suffix(".json.part")
        partial.write_text(json.dumps(self.known, indent=2, sort_keys=True) + "\n")
        partial.replace(self.path)


class Target:
    """One engine's database at one size."""

    def __init__(self, engine: str, patients: int, cache: Path, pg_prefix: str) -> None:
        self.engine = engine
        self.patients = patients
        if engine == "postgresql":
            self.name = f"{pg_prefix}_{size_label(patients)}"
            self.url = pg_url(self.name)
            self.file: Path | None = None
        else:
            self.file = cache / f"sqlite-{patients}.db"
            self.name = self.file.name
            self.url = f"sqlite:///{self.file}"
        self.key = f"{engine}:{self.name}"
        self.env = base_env(cache / "var", self.url)
        self.label = f"{'PostgreSQL' if engine == 'postgresql' else 'SQLite'}, {patients:,}"

    def create(self) -> None:
        if self.file is None:
            try:
                _pg_admin(f"CREATE DATABASE {self.name}")
            except Exception as exc:  # noqa: BLE001 - it exists already
                if "already exists" not in str(exc):
                    raise

    def drop(self) -> None:
        if self.file is None:
            if "bench" not in self.name:
                raise RuntimeError(f"refusing to drop {self.name}: not a bench database")
            _pg_admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.file}{suffix}").unlink(missing_ok=True)

    def migrate(self) -> None:
        subprocess.run([*careloop(), "migrate", "-v0"], env=self.env, check=True)


def replicate_practice(
    target: Target, source: Target, practices: Practices, *, regenerate: bool
) -> dict[str, Any]:
    """The target (PostgreSQL) as copies of the smaller source practice (bench/replicate.py)."""
    import psycopg

    from replicate import replicate

    source_practice = ensure_practice(source, practices, regenerate=regenerate)
    copies = target.patients // source.patients
    known = practices.get(target.key)
    wanted = {"replicated_from": source.name, "copies": copies, **source_practice}
    if (
        known is not None
        and known.get("replicated_from") == source.name
        and known.get("demo_source") == source_practice.get("demo_source")
        and not regenerate
    ):
        target.migrate()
        return known
    print(f"  {target.label}: {copies} copies of {source.name} into {target.name}", flush=True)
    practices.put(target.key, None)
    target.drop()
    began = time.monotonic()
    _pg_admin(f"CREATE DATABASE {target.name} TEMPLATE {source.name}")
    with psycopg.connect(target.url.replace("postgres://", "postgresql://", 1)) as conn:
        counts = replicate(conn, copies=copies)
    with psycopg.connect(
        target.url.replace("postgres://", "postgresql://", 1), autocommit=True
    ) as conn:
        conn.execute("VACUUM ANALYZE")
    target.migrate()
    known = {
        **wanted,
        **counts,
        "patients": counts["patients"],
        "seconds": round(time.monotonic() - began, 1),
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    practices.put(target.key, known)
    return known


def ensure_practice(target: Target, practices: Practices, *, regenerate: bool) -> dict[str, Any]:
    """Migrate; (re)generate the practice when missing, smaller, half-made or asked."""
    target.create()
    target.migrate()
    have = int(worker_call(target.env, ["count"])["patients"])
    known = practices.get(target.key)
    half_made = 0 < have < target.patients and (known is None or known["patients"] != have)
    fingerprint = demo_fingerprint()
    if have < target.patients or regenerate or half_made:
        why = (
            "asked (--regenerate)"
            if regenerate
            else f"half-made ({have:,} patients)"
            if half_made
            else f"has {have:,} patients"
        )
        print(f"  {target.label}: generating the practice into {target.name} ({why})", flush=True)
        practices.put(target.key, None)
        if have:
            target.drop()
            target.create()
            target.migrate()
        began = time.monotonic()
        subprocess.run(
            [*careloop(), "demo", "--patients", str(target.patients), "--seed", "1"]
            + ["--as-of", AS_OF],
            env=target.env,
            check=True,
        )
        known = {
            "patients": target.patients,
            "seed": 1,
            "as_of": AS_OF,
            "demo_source": fingerprint,
            "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - began, 1),
        }
        practices.put(target.key, known)
        target.migrate()
    elif known is None:
        known = {"patients": have, "seed": 1, "as_of": AS_OF, "demo_source": "unknown"}
    if known.get("demo_source") != fingerprint:
        known = {**known, "stale": True}
        print(
            f"  note: {target.name} was made by another version of careloop demo "
            f"({known.get('demo_source')}, now {fingerprint}); its rates are the old demo's. "
            "--regenerate rebuilds it.",
            flush=True,
        )
    return known


def evict_from_page_cache(path: Path) -> bool:
    """Drop a file's clean pages from the OS cache (no privilege needed)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return False
    for suffix in ("", "-wal"):
        try:
            fd = os.open(f"{path}{suffix}", os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


# --- the worker (a separate process, inside one engine's environment) -------------------


def worker_call(env: dict[str, str], args: list[str]) -> dict[str, Any]:
    """Run the worker; echo its progress lines (stderr, "progress: ...") as they come."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and proc.stdout is not None  # noqa: S101 - piped above
    tail: list[str] = []
    for line in proc.stderr:
        if line.startswith("progress: "):
            print(f"    {line[10:].rstrip()}", flush=True)
        else:
            tail = [*tail[-200:], line]
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"worker {args[0]} failed: {''.join(tail).strip()[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def progress(text: str) -> None:
    print(f"progress: {text}", file=sys.stderr, flush=True)


def _setup() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careloop.settings")
    django.setup()


def work_count() -> dict[str, Any]:
    _setup()
    from careloop.patients.models import Patient

    return {"patients": Patient.objects.count()}


def _database_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            version = f"PostgreSQL {cursor.fetchone()[0]}"
            cursor.execute("SHOW shared_buffers")
            return f"{version} (shared_buffers {cursor.fetchone()[0]})"
        cursor.execute("SELECT sqlite_version()")
        version = f"SQLite {cursor.fetchone()[0]}"
        try:
            cursor.execute("PRAGMA cipher_version")
            row = cursor.fetchone()
        except Exception:  # noqa: BLE001 - plain SQLite has no such pragma
            row = None
        return version + (f" (SQLCipher {row[0]})" if row and row[0] else "")


def _summary(run: Any) -> list[dict[str, Any]]:
    """Per group: the population counts, the met rate and the rolling statuses."""
    from django.db.models import Count

    from careloop.caregaps.evaluate import run_counts
    from careloop.caregaps.models import PatientMeasureResult

    statuses: dict[int, dict[str, int]] = {}
    rows = PatientMeasureResult.objects.filter(run=run).values("group", "status")
    for row in rows.annotate(n=Count("id")):
        statuses.setdefault(row["group"], {})[row["status"] or "none"] = row["n"]
    groups = []
    for number, counts in run_counts(run).items():
        eligible = (
            counts["denominator"]
            - counts["denominator_exclusion"]
            - counts["denominator_exception"]
        )
        groups.append(
            {
                "group": number,
                **counts,
                "met_rate": round(counts["numerator"] / eligible, 4) if eligible > 0 else None,
                "statuses": statuses.get(number, {}),
            }
        )
    return groups


def work_evaluate(passes: int, one_patient: int) -> dict[str, Any]:
    _setup()
    import django

    from careloop.caregaps.evaluate import (
        Period,
        caregaps_refresh,
        current_runs,
        measure_evaluate,
    )
    from careloop.caregaps.measure import measures
    from careloop.caregaps.models import MeasureRun
    from careloop.clinical.models import ClinicalFact
    from careloop.patients.models import Patient

    as_of = datetime.date.fromisoformat(AS_OF)
    period = Period.year(as_of.year)
    result: dict[str, Any] = {
        "patients": Patient.objects.count(),
        "clinical_facts": ClinicalFact.objects.count(),
        "database": _database_version(),
        "django": django.get_version(),
        "period": [period.start.isoformat(), period.end.isoformat()],
        "as_of": AS_OF,
    }
    # Earlier runs (not timed): each measure's results start from empty tables. With no
    # passes, only the one-patient latency, against the runs the last bench left.
    if passes:
        MeasureRun.objects.filter(measure__in=list(measures())).delete()
    seconds: dict[str, list[float]] = {}
    evaluation: dict[str, list[float]] = {}
    rates: dict[str, Any] = {}
    for attempt in range(passes):
        for measure_id, measure in measures().items():
            began = time.perf_counter()
            run = measure_evaluate(measure=measure, period=period, as_of=as_of)
            seconds.setdefault(measure_id, []).append(time.perf_counter() - began)
            # The evaluation alone (MeasureRun.seconds), without the gap lifecycle's
            # synchronisation and the commit that follow it.
            evaluation.setdefault(measure_id, []).append(float(run.seconds or 0.0))
            progress(f"pass {attempt + 1}: {measure_id} {seconds[measure_id][-1]:.2f} s")
            if attempt == passes - 1:
                rates[measure_id] = _summary(run)
            # Keep the database from growing run after run: only the last run stays.
            MeasureRun.objects.filter(measure=measure_id).exclude(pk=run.pk).delete()
    result["seconds"] = seconds
    result["evaluation_seconds"] = evaluation
    result["rates"] = rates
    # One patient: every current run refreshed for a random patient, as an import does;
    # then the nine CMS measures alone (the target's figure). The first call of each
    # (compiling the measures) apart, two more not counted.
    ids = list(Patient.objects.order_by("?").values_list("id", flat=True)[: one_patient + 3])
    current = current_runs()
    for key, runs in (
        ("one_patient", current),
        ("one_patient_cms", [run for run in current if run.measure.startswith("CMS")]),
    ):
        timings: list[float] = []
        for pid in ids:
            began = time.perf_counter()
            caregaps_refresh(patient_ids=[pid], runs=runs)
            timings.append(time.perf_counter() - began)
        first, counted = timings[:1], timings[3:]
        if not counted:
            continue
        cuts = statistics.quantiles(counted, n=20, method="inclusive") if len(counted) > 1 else []
        result[key] = {
            "samples": len(counted),
            "measures": len(runs),
            "first_ms": round(first[0] * 1000, 1),
            "median_ms": round(statistics.median(counted) * 1000, 1),
            "p95_ms": round((cuts[18] if cuts else counted[0]) * 1000, 1),
            "max_ms": round(max(counted) * 1000, 1),
        }
    return result


# --- the reference engine ---------------------------------------------------------------


def run_quiet(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def npm_install(cache: Path) -> tuple[Path | None, str]:
    """The pinned packages in <cache>/node; (None, why) when they cannot be had."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None, "npm is absent on this machine (the reference engine runs on Node)"
    home = cache / "node"
    home.mkdir(parents=True, exist_ok=True)
    package = {
        "name": "careloop-bench-reference",
        "private": True,
        "type": "module",
        "dependencies": NPM_PACKAGES,
    }
    wanted = json.dumps(package, indent=2) + "\n"
    manifest = home / "package.json"
    installed = home / "node_modules" / ".careloop-installed"
    if manifest.exists() and manifest.read_text() == wanted and installed.exists():
        return home, ""
    manifest.write_text(wanted)
    print(f"  reference engine: npm install into {home}", flush=True)
    done = run_quiet(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=home,
        timeout=600,
    )
    if done.returncode != 0:
        return None, f"npm install failed: {done.stderr.strip()[-300:]}"
    installed.write_text(wanted)
    return home, ""


def elm_from_bundles(measure_id: str, into: Path) -> bool:
    """Library resources of the shared measure folder that carry ELM JSON, if any."""
    import base64

    found = False
    folder = SHARED_ECQM / "measures" / measure_id
    for path in folder.glob("*.json"):
        resource = json.loads(path.read_text())
        entries = [e.get("resource", {}) for e in resource.get("entry", [])] or [resource]
        for item in entries + list(resource.get("contained", [])):
            if item.get("resourceType") != "Library":
                continue
            for content in item.get("content", []):
                if content.get("contentType") == "application/elm+json" and content.get("data"):
                    into.mkdir(parents=True, exist_ok=True)
                    elm = base64.b64decode(content["data"])
                    (into / f"{item.get('name', item.get('id'))}.json").write_bytes(elm)
                    found = True
    return found


def qicore_modelinfo(explicit: Path | None, node_home: Path) -> Path | None:
    candidates = [explicit] if explicit else []
    if os.environ.get("CARELOOP_QICORE_MODELINFO"):
        candidates.append(Path(os.environ["CARELOOP_QICORE_MODELINFO"]))
    candidates += sorted((node_home / "node_modules").rglob(QICORE_MODELINFO))
    return next((path for path in candidates if path and path.is_file()), None)


def prepare_elm(
    measure_ids: list[str], cache: Path, node_home: Path, modelinfo_file: Path | None
) -> tuple[Path | None, str]:
    """ELM JSON for each measure under <cache>/elm/<ID>/; (None, why) when there is none."""
    elm_root = cache / "elm"
    missing = [
        mid
        for mid in measure_ids
        if not (elm_root / mid / ".complete").exists() and not elm_from_bundles(mid, elm_root / mid)
    ]
    if not missing:
        return elm_root, ""
    modelinfo = qicore_modelinfo(modelinfo_file, node_home)
    if modelinfo is None:
        return None, (
            "no ELM for the measures: the measure folders carry CQL only (no Library with "
            "application/elm+json), and translating their CQL (`using QICore version "
            "'6.0.0'`) with @cqframework/cql needs the QI-Core 6.0.0 model info "
            f"({QICORE_MODELINFO}), which no npm, PyPI or Debian package ships "
            "(Maven Central, where the Java translator and its model infos live, is not "
            "reachable here). Give it with --qicore-modelinfo FILE or "
            "$CARELOOP_QICORE_MODELINFO, or put ELM JSON in "
            f"{elm_root}/<ID>/ to run this column"
        )
    errors = []
    for mid in missing:
        done = run_quiet(
            [
                "node",
                str(REFERENCE_HARNESS),
                "translate",
                str(SHARED_ECQM / "measures" / mid / "cql"),
                str(elm_root / mid),
                str(modelinfo),
            ],
            env={**os.environ, "NODE_PATH": str(node_home / "node_modules")},
            cwd=node_home,
            timeout=900,
        )
        if done.returncode != 0:
            errors.append(f"{mid}: {done.stderr.strip()[-300:]}")
        else:
            (elm_root / mid / ".complete").write_text(str(modelinfo) + "\n")
    if errors:
        return None, "translating the CQL to ELM failed: " + "; ".join(errors)
    return elm_root, ""


def ndjson_sample(patients: int, cache: Path) -> Path:
    """The first `patients` of the practice (same seed, same as-of) as Bulk Data NDJSON."""
    out = cache / f"ndjson-{patients}"
    stamp = out / ".careloop-complete"
    fingerprint = demo_fingerprint()
    if stamp.exists() and stamp.read_text().strip() == fingerprint:
        return out
    shutil.rmtree(out, ignore_errors=True)
    env = base_env(cache / "var", f"sqlite:///{cache / 'unused.db'}")
    subprocess.run(
        [*careloop(), "demo", "--patients", str(patients), "--seed", "1", "--as-of", AS_OF]
        + ["--format", "ndjson", "--out", str(out)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    stamp.write_text(fingerprint + "\n")
    return out


def reference_engine(
    patients: int, measure_ids: list[str], cache: Path, modelinfo_file: Path | None
) -> dict[str, Any]:
    result: dict[str, Any] = {"engine": "cql-execution + cql-exec-fhir", "patients": patients}
    node_home, why = npm_install(cache)
    if node_home is None:
        return {**result, "status": "skipped", "note": why}
    result["versions"] = {
        "node": run_quiet(["node", "--version"]).stdout.strip(),
        **{name: installed_version(node_home, name) for name in NPM_PACKAGES},
    }
    elm_root, why = prepare_elm(measure_ids, cache, node_home, modelinfo_file)
    if elm_root is None:
        return {**result, "status": "skipped", "note": why}
    sample = ndjson_sample(patients, cache)
    print(f"  reference engine: {patients} patients, {len(measure_ids)} measures", flush=True)
    done = run_quiet(
        [
            "node",
            str(REFERENCE_HARNESS),
            "run",
            str(sample),
            str(elm_root),
            str(SHARED_ECQM / "measures"),
            AS_OF[:4],
            ",".join(measure_ids),
        ],
        env={**os.environ, "NODE_PATH": str(node_home / "node_modules")},
        cwd=node_home,
        timeout=3600,
    )
    if done.returncode != 0:
        return {
            **result,
            "status": "failed",
            "note": f"the reference engine failed: {done.stderr.strip()[-500:]}",
        }
    return {**result, "status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])}


def installed_version(node_home: Path, name: str) -> str:
    try:
        meta = json.loads((node_home / "node_modules" / name / "package.json").read_text())
    except OSError:
        return "not installed"
    return str(meta.get("version", "?"))


# --- the report -------------------------------------------------------------------------


def print_engine(r: dict[str, Any]) -> None:
    seconds: dict[str, list[float]] = r["seconds"]
    evaluation: dict[str, list[float]] = r.get("evaluation_seconds") or seconds
    patients = r["patients"]
    print(
        f"\n{r['label']} patients ({r['clinical_facts']:,} clinical facts), {r['database']}, "
        f"period {r['period'][0]}..{r['period'][1]}, statuses as of {r['as_of']}"
        + (" [practice made by an older demo]" if r.get("practice", {}).get("stale") else "")
    )
    print(
        "Seconds: evaluation (MeasureRun.seconds: every group's statement and its sets), "
        "then with the gap lifecycle and the commit (wall)."
    )
    print(
        "| measure | cold s | warm s | warm wall s | warm patients/s | initial pop. "
        "| denominator | excluded | numerator | met % | due soon | overdue |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for measure_id, runs in evaluation.items():
        for group in r["rates"][measure_id]:
            name = (
                measure_id if len(r["rates"][measure_id]) == 1 else f"{measure_id}/{group['group']}"
            )
            timing = (
                f"{runs[0]:.2f} | {runs[-1]:.2f} | {seconds[measure_id][-1]:.2f} "
                f"| {patients / runs[-1]:,.0f}"
                if group["group"] == 1
                else " | | | "
            )
            rate = "-" if group["met_rate"] is None else f"{100 * group['met_rate']:.1f}"
            status = group["statuses"]
            print(
                f"| {name} | {timing} | {group['initial_population']:,} "
                f"| {group['denominator']:,} "
                f"| {group['denominator_exclusion'] + group['denominator_exception']:,} "
                f"| {group['numerator']:,} | {rate} | {status.get('due_soon', 0):,} "
                f"| {status.get('overdue', 0):,} |"
            )
    for label, ids in (
        ("the CMS measures", [m for m in evaluation if m.startswith("CMS")]),
        ("every measure", list(evaluation)),
    ):
        if not ids:
            continue
        cold = sum(evaluation[m][0] for m in ids)
        warm = sum(evaluation[m][-1] for m in ids)
        wall = sum(seconds[m][-1] for m in ids)
        print(
            f"| {label} ({len(ids)}) | {cold:.2f} | {warm:.2f} | {wall:.2f} "
            f"| {patients / warm:,.0f} | | | | | | | |"
        )
    for key in ("one_patient", "one_patient_cms"):
        one = r.get(key)
        if one:
            print(
                f"One patient, {one['measures']} measures (caregaps_refresh), {one['samples']} "
                f"patients: median {one['median_ms']:.1f} ms, p95 {one['p95_ms']:.1f} ms, "
                f"max {one['max_ms']:.1f} ms (first call {one['first_ms']:.1f} ms)"
            )
    print(f"Cold: {r['cold']}. Load average {r['load_before']} before, {r['load_after']} after.")


def print_reference(ref: dict[str, Any], careloop_runs: list[dict[str, Any]]) -> None:
    print(f"\nReference engine ({ref['engine']}), {ref['patients']} patients of the same practice")
    if ref.get("versions"):
        print("  " + ", ".join(f"{k} {v}" for k, v in ref["versions"].items()))
    if ref["status"] != "ok":
        print(f"  {ref['status'].upper()}: {ref['note']}")
        return
    best = {
        mid: max(r["patients"] / r["seconds"][mid][-1] for r in careloop_runs)
        for mid in ref["measures"]
        if careloop_runs and all(mid in r["seconds"] for r in careloop_runs)
    }
    print("| measure | seconds | patients/s | careloop warm patients/s (best) | met % |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for mid, m in ref["measures"].items():
        rate = "-" if m.get("met_rate") is None else f"{100 * m['met_rate']:.1f}"
        print(
            f"| {mid} | {m['seconds']:.2f} | {ref['patients'] / m['seconds']:,.1f} "
            f"| {best.get(mid, 0):,.0f} | {rate} |"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        if sys.argv[2] == "count":
            print(json.dumps(work_count()))
        else:
            print(json.dumps(work_evaluate(int(sys.argv[3]), int(sys.argv[4]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres", default="100000,1000000", help="patients, comma-separated; 0 skips"
    )
    parser.add_argument("--sqlite", default="100000", help="patients, comma-separated; 0 skips")
    parser.add_argument(
        "--reference", type=int, default=200, help="patients for the reference engine; 0 skips"
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=2,
        help="population runs per measure; 0: only the one-patient latency, on the last runs",
    )
    parser.add_argument("--one-patient", type=int, default=50, help="patients for the latency")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--pg-prefix", default=PG_PREFIX, help="PostgreSQL database names")
    parser.add_argument("--regenerate", action="store_true", help="rebuild the practices")
    parser.add_argument("--qicore-modelinfo", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument(
        "--replicate-from",
        type=int,
        default=100_000,
        help="build larger PostgreSQL practices as copies of this size's (0: generate them)",
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    def sizes(raw: str) -> list[int]:
        return [int(s) for s in raw.replace("_", "").split(",") if s.strip() and int(s) > 0]

    started = datetime.datetime.now(datetime.UTC)
    report: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": load_average(),
        "careloop": git_revision(),
        "demo": {"seed": 1, "as_of": AS_OF, "source": demo_fingerprint()},
        "command": sys.argv,
        "careloop_runs": [],
    }
    m = report["machine"]
    print(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM; {m['platform']}; "
        f"Python {m['python']}; careloop {report['careloop']}; "
        f"load average {report['load_before']} (1, 5, 15 min)",
        flush=True,
    )
    practices = Practices(args.cache)
    targets = [Target("sqlite", n, args.cache, args.pg_prefix) for n in sizes(args.sqlite)]
    pg_sizes = sizes(args.postgres)
    if pg_sizes and not postgres_reachable():
        print(f"PostgreSQL: not reachable at {PG_MAINTENANCE}, not measured", flush=True)
        report["postgresql"] = "not reachable"
    else:
        targets += [Target("postgresql", n, args.cache, args.pg_prefix) for n in pg_sizes]
    for target in targets:
        base = args.replicate_from
        if target.engine == "postgresql" and base and target.patients > base:
            source = Target("postgresql", base, args.cache, args.pg_prefix)
            practice = replicate_practice(target, source, practices, regenerate=args.regenerate)
        else:
            practice = ensure_practice(target, practices, regenerate=args.regenerate)
        # The practice's maintenance after a large import (careloop.clinical.layout):
        # the facts in code order. Timed, as the practice would run it (not for the
        # one-patient latency alone: the last bench's layout stands).
        cluster: dict[str, Any] = {"seconds": 0.0, "said": "not clustered (--passes 0)"}
        if args.passes:
            began = time.perf_counter()
            clustered = run_quiet([*careloop(), "caregaps", "cluster"], env=target.env, check=True)
            cluster = {
                "seconds": round(time.perf_counter() - began, 2),
                "said": clustered.stdout.strip(),
            }
        print(f"{target.label} patients: {cluster['said']}", flush=True)
        cold = "new process and connection after the migrations"
        if target.file is not None and evict_from_page_cache(target.file):
            cold += "; the database file dropped from the OS page cache"
        elif target.file is None:
            cold += "; PostgreSQL's shared buffers and the OS cache not flushed"
        print(f"{target.label} patients: evaluating ({args.passes} passes)", flush=True)
        load_before = load_average()
        result = worker_call(target.env, ["evaluate", str(args.passes), str(args.one_patient)])
        result.update(
            label=target.label,
            engine=target.engine,
            database_name=target.name,
            practice=practice,
            cold=cold,
            cluster=cluster,
            load_before=load_before,
            load_after=load_average(),
        )
        report["careloop_runs"].append(result)
        print_engine(result)

    measure_ids = (
        list(report["careloop_runs"][0]["seconds"])
        if report["careloop_runs"]
        else sorted(p.name for p in (SHARED_ECQM / "measures").glob("CMS*"))
    )
    if args.reference:
        if not SHARED_ECQM.is_dir():
            report["reference"] = {
                "status": "skipped",
                "note": f"{SHARED_ECQM} is missing (the measures' CQL and value sets)",
                "engine": "cql-execution + cql-exec-fhir",
                "patients": args.reference,
            }
        else:
            report["reference"] = reference_engine(
                args.reference, measure_ids, args.cache, args.qicore_modelinfo
            )
        print_reference(report["reference"], report["careloop_runs"])

    report["load_after"] = load_average()
    report["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    out = args.out or OUT / f"caregaps-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nLoad average {report['load_before']} before, {report['load_after']} after "
        f"(1, 5, 15 min). Results: {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
