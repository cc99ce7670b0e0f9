#!/usr/bin/env python3
"""Benchmark careloop's FHIR R4 API: requests/s, p50 and p99 under 16 concurrent connections.

Builds a scratch PostgreSQL database `careloop_bench_fhir` (dropped afterwards unless
--keep) with `careloop demo --patients N`, registers a FHIR client with a fresh RSA key,
starts `careloop serve` (TLS, its default web workers) on loopback, gets an access token
through the real token endpoint with a signed assertion, then for each scenario keeps
16 keep-alive connections busy for --seconds:

- `read`: GET /fhir/r4/Patient/<random patient id>
- `observation-search`: GET /fhir/r4/Observation?patient=<random>&category=vital-signs
  &date=ge2020-01-01 (a typical per-patient clinical query, one page of up to 50)

Every request is audited (one event per read or search page), as in production.

    python bench/fhir_api.py --patients 10000 --seconds 20 [--keep] [--reuse]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PG_MAINTENANCE = os.environ.get("CARELOOP_BENCH_POSTGRES", "postgres:///postgres")
PG_DB = "careloop_bench_fhir"
CONNECTIONS = 16
AS_OF = "2026-11-01"


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_kib / 1024 / 1024:.1f} GiB RAM; "
        f"Python {platform.python_version()}; {platform.platform()}"
    )


def psql(sql: str) -> None:
    subprocess.run(["psql", PG_MAINTENANCE, "-qc", sql], check=True, capture_output=True)


def careloop(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "careloop", *args], env=env, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SETUP = """
import json, sys, uuid, jwt, django
django.setup()
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from careloop.fhirapi.clients import client_add
from careloop.patients.models import Patient
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
kid = uuid.uuid4().hex[:8]
public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
public.update(kid=kid, alg="RS384")
client = client_add(name="bench-" + kid, jwks={"keys": [public]}, scopes=["system/*.read"],
                    role="care_coordinator")
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()).decode()
ids = [str(i) for i in Patient.objects.values_list("pk", flat=True)]
json.dump({"client_id": client.client_id, "kid": kid, "pem": pem, "patients": ids}, sys.stdout)
"""


def token(base: str, setup: dict[str, object], context: ssl.SSLContext) -> str:
    import urllib.parse
    import urllib.request

    import jwt

    url = f"{base}/auth/token"
    claims = {
        "iss": setup["client_id"],
        "sub": setup["client_id"],
        "aud": url,
        "exp": int(time.time()) + 240,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode(
        claims, str(setup["pem"]), algorithm="RS384", headers={"kid": setup["kid"]}
    )
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "scope": "system/*.read",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
    ).encode()
    with urllib.request.urlopen(url, form, context=context, timeout=30) as answer:  # noqa: S310
        return str(json.load(answer)["access_token"])


async def run(
    base: str, paths: list[str], bearer: str, seconds: float, context: ssl.SSLContext
) -> tuple[list[float], int]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, ssl=context)
    headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/fhir+json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal errors
            rng = random.Random()  # noqa: S311 - choosing test ids, not secrets
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(base + rng.choice(paths)) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return latencies, errors


def report(name: str, latencies: list[float], errors: int, seconds: float) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    print(
        f"{name:20s} {len(ordered) / seconds:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
        f"  ({len(ordered)} requests, {errors} non-200)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database")
    options = parser.parse_args()
    print(machine())
    var = Path(tempfile.mkdtemp(prefix="careloop-bench-fhir-"))
    env = {
        **os.environ,
        "CARELOOP_VAR_DIR": str(var),
        "CARELOOP_ENV": "development",
        "CARELOOP_DATABASE_URL": PG_MAINTENANCE.rsplit("/", 1)[0] + "/" + PG_DB,
        "DJANGO_SETTINGS_MODULE": "careloop.settings",
        "CARELOOP_LOG_LEVEL": "WARNING",
    }
    if not options.reuse:
        psql(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        psql(f"CREATE DATABASE {PG_DB}")
        careloop(env, "migrate", "-v0")
        started = time.perf_counter()
        careloop(
            env, "demo", "--patients", str(options.patients), "--seed", "1", "--as-of", AS_OF, "-v0"
        )
        print(
            f"demo of {options.patients} patients loaded in {time.perf_counter() - started:.0f} s"
        )
    # The keys live in VAR_DIR: a reused database needs the directory it was made with.
    setup = json.loads(
        subprocess.run(
            [sys.executable, "-c", SETUP], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "careloop", "serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        # Its access log is not what is measured; written to a terminal it would cost.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"https://127.0.0.1:{port}/fhir/r4"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's self-signed loopback certificate
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        ids = setup["patients"]
        scenarios = {
            "read": [f"/Patient/{pid}" for pid in ids],
            "observation-search": [
                f"/Observation?patient={pid}&category=vital-signs&date=ge2020-01-01" for pid in ids
            ],
        }
        for name, paths in scenarios.items():
            bearer = token(base, setup, context)
            asyncio.run(run(base, paths, bearer, 2.0, context))  # warm up
            latencies, errors = asyncio.run(run(base, paths, bearer, options.seconds, context))
            report(name, latencies, errors, options.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not options.keep:
            psql(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
