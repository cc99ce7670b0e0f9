"""`careloop run` end to end: first start fills the demo, prints sign-ins, serves HTTPS and
runs the worker; Ctrl-C stops both cleanly; a second start reuses the database and cert.
"""

from __future__ import annotations

import re
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import override_settings

from careloop.security.demo_users import DemoUsersRefused, demo_users_ensure
from careloop.security.models import STAFF_ROLES, User
from tests.core.test_server import assert_one_line, careloop, free_port, https_get

READY_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
SIGN_IN = re.compile(r"^    (\S+)\s+(\S{16,})\s+\(.+\)$", re.MULTILINE)


@dataclass
class Finished:
    stdout: str
    stderr: str
    returncode: int
    credentials: dict[str, str]
    served_certificate: bytes


def run_until_ready_then_interrupt(*, env: dict[str, str], port: int, logs: Path) -> Finished:
    """Start `careloop run`, wait for its banner and /healthz, send SIGINT, wait for exit."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "run.out", logs / "run.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "careloop",
                "run",
                "--bind",
                f"127.0.0.1:{port}",
                "--patients",
                "5",
            ],
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "Press Ctrl-C to stop." not in out_path.read_text():
            assert process.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, "careloop run never said it was ready"
            time.sleep(0.3)
        health = https_get(port, "/healthz")
        assert health.status == 200
        # The sign-in UI is another engineer's; whatever is at these paths must answer.
        for path in ("/accounts/login/", "/"):
            assert https_get(port, path).status < 500
        served = served_certificate(port)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            returncode = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    stdout = out_path.read_text()
    return Finished(
        stdout=stdout,
        stderr=err_path.read_text(),
        returncode=returncode,
        credentials=dict(SIGN_IN.findall(stdout)),
        served_certificate=served,
    )


def served_certificate(port: int) -> bytes:
    import socket
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return der


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_run_serves_prints_sign_ins_stops_cleanly_and_restarts_on_the_same_data(
    scratch_env: dict[str, str], tmp_path: Path
) -> None:
    env = scratch_env | {"CARELOOP_WEB_WORKERS": "1"}
    var = Path(env["CARELOOP_VAR_DIR"])

    first = run_until_ready_then_interrupt(env=env, port=free_port(), logs=tmp_path / "first")

    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert "careloop stopped." in first.stdout  # printed only when both children exit 0
    assert "Filling the demo practice with 5 patients" in first.stdout
    assert set(first.credentials) == {str(role.value) for role in STAFF_ROLES}
    credentials_file = var / "demo-credentials.txt"
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
    key_file = var / "tls" / "localhost.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    certificate = (var / "tls" / "localhost.crt").read_bytes()

    port = free_port()
    second = run_until_ready_then_interrupt(env=env, port=port, logs=tmp_path / "second")

    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    assert "Filling the demo practice" not in second.stdout
    assert second.credentials == first.credentials
    assert (var / "tls" / "localhost.crt").read_bytes() == certificate
    assert second.served_certificate == first.served_certificate
    assert port_is_free(port), "the web server outlived careloop run"


def test_run_with_a_bad_bind_is_one_line_and_non_zero(scratch_env: dict[str, str]) -> None:
    result = careloop("run", "--bind", "127.0.0.1:notaport", env=scratch_env)
    assert result.returncode != 0
    assert_one_line(result.stderr)


def test_run_with_an_unknown_option_is_one_line_and_non_zero(scratch_env: dict[str, str]) -> None:
    result = careloop("run", "--frobnicate", env=scratch_env)
    assert result.returncode == 2
    assert_one_line(result.stderr)
    assert "careloop run --help" in result.stderr


@pytest.mark.django_db
def test_demo_users_get_one_account_per_staff_role_with_hashed_random_passwords(
    tmp_path: Path,
) -> None:
    with override_settings(VAR_DIR=tmp_path):
        first = demo_users_ensure()
        again = demo_users_ensure()

    assert first == again
    assert {sign_in.username for sign_in in first} == {str(r.value) for r in STAFF_ROLES}
    assert len({sign_in.password for sign_in in first}) == len(first)
    for username, role, password, _secret in first:
        user = User.objects.get(username=username)
        assert user.role == role
        assert len(password) >= 16
        assert password not in user.password
        assert user.check_password(password)
    assert stat.S_IMODE((tmp_path / "demo-credentials.txt").stat().st_mode) == 0o600


@pytest.mark.django_db
def test_demo_users_are_refused_in_production(tmp_path: Path) -> None:
    with override_settings(VAR_DIR=tmp_path, PRODUCTION=True), pytest.raises(DemoUsersRefused):
        demo_users_ensure()
    assert not User.objects.exists()
    assert not (tmp_path / "demo-credentials.txt").exists()
