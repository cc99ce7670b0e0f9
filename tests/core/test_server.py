"""`careloop serve` over real sockets: TLS versions, HSTS, plain HTTP, and one-line errors.

One server is started for the module, on a free port, against its own migrated
database of the current test engine (a SQLite file, or a scratch PostgreSQL database).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    cert: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def careloop(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "careloop", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def unverified_client(version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version is not None:
        context.minimum_version = version
        context.maximum_version = version
        # OpenSSL's default security level forbids TLS 1.0/1.1 in the client itself;
        # lower it so that a refusal can only come from the server.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def https_get(
    port: int, path: str, *, context: ssl.SSLContext | None = None
) -> http.client.HTTPResponse:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context or unverified_client(), timeout=10
    )
    connection.request("GET", path)
    return connection.getresponse()


def wait_for_healthz(*, port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited before answering"
        try:
            if https_get(port, "/healthz").status == 200:
                return
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    raise AssertionError(f"no answer on https://127.0.0.1:{port}/healthz in {timeout} s")


def assert_one_line(text: str) -> None:
    assert text.strip(), "expected an error message"
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text


def scratch_environment(base: Path) -> tuple[dict[str, str], Callable[[], None]]:
    """Env for a careloop subprocess on its own database of this run's engine; and a dropper."""
    env = dict(os.environ)
    env["CARELOOP_VAR_DIR"] = str(base / "var")
    env["CARELOOP_ENV"] = "test"
    env["CARELOOP_WEB_WORKERS"] = "1"  # two cores are shared with the rest of the suite
    for name in ("DJANGO_SETTINGS_MODULE", "CARELOOP_TLS_CERT", "CARELOOP_TLS_KEY"):
        env.pop(name, None)
    if settings.DATABASE.engine != "postgresql":
        env["CARELOOP_DATABASE_URL"] = f"sqlite:///{base / 'careloop.db'}"
        return env, lambda: None
    import psycopg

    db = settings.DATABASES["default"]
    user = f"{db['USER']}@" if db["USER"] else ""
    port = f":{db['PORT']}" if db["PORT"] else ""
    admin = f"postgresql://{user}{db['HOST'] or ''}{port}"
    name = f"careloop_serve_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env["CARELOOP_DATABASE_URL"] = f"{admin.replace('postgresql://', 'postgres://')}/{name}"

    def drop() -> None:
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return env, drop


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env, drop = scratch_environment(tmp_path_factory.mktemp("serve"))
    try:
        migrated = careloop("migrate", "-v0", env=env, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        yield env
    finally:
        drop()


@pytest.fixture(scope="module")
def server(server_env: dict[str, str]) -> Iterator[Server]:
    var = Path(server_env["CARELOOP_VAR_DIR"])
    var.mkdir(parents=True, exist_ok=True)
    stdout, stderr = var / "serve.out", var / "serve.err"
    port = free_port()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "careloop", "serve", "--bind", f"127.0.0.1:{port}"],
            env=server_env,
            stdout=out,
            stderr=err,
        )
    running = Server(
        port=port, process=process, stdout=stdout, stderr=stderr, cert=var / "tls" / "localhost.crt"
    )
    try:
        wait_for_healthz(port=port, process=process, timeout=START_TIMEOUT)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0
    assert "Traceback" not in stderr.read_text()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_1_0_and_1_1_handshakes_are_refused_by_the_server(
    server: Server, version: ssl.TLSVersion
) -> None:
    with (
        pytest.raises(ssl.SSLError) as refused,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        unverified_client(version).wrap_socket(raw),
    ):
        pass
    # The protocol_version alert is sent by the server; a client-side refusal would
    # be NO_PROTOCOLS_AVAILABLE or UNSUPPORTED_PROTOCOL instead.
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_tls_1_2_and_1_3_are_accepted_with_the_self_signed_localhost_certificate(
    server: Server, version: ssl.TLSVersion, host: str
) -> None:
    context = ssl.create_default_context(cafile=str(server.cert))
    context.minimum_version = version
    context.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        assert conn.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
        cipher, _, _ = conn.cipher()  # type: ignore[misc]
    if version is ssl.TLSVersion.TLSv1_2:
        # Forward secrecy and an AEAD cipher: ECDHE with AES-GCM or ChaCha20-Poly1305.
        assert cipher.startswith("ECDHE-")
        assert "GCM" in cipher or "CHACHA20" in cipher


def test_tls_1_2_without_forward_secrecy_or_aead_is_refused(server: Server) -> None:
    context = unverified_client(ssl.TLSVersion.TLSv1_2)
    context.set_ciphers("AES128-SHA:AES256-SHA:AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        context.wrap_socket(raw),
    ):
        pass


def test_healthz_answers_200_over_https_with_hsts(server: Server) -> None:
    response = https_get(server.port, "/healthz")
    assert response.status == 200
    assert response.read() == b'{"status": "ok"}'
    hsts = response.getheader("Strict-Transport-Security") or ""
    assert hsts.startswith("max-age=31536000")


def test_plain_http_on_the_tls_port_gets_no_http_response(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/" not in received
    assert b"status" not in received


def test_access_log_leaves_out_query_strings(server: Server) -> None:
    marker = f"querymarker{uuid.uuid4().hex}"
    response = https_get(server.port, f"/healthz?name={marker}&dob=1970-01-01")
    assert response.status == 200
    response.read()
    deadline = time.monotonic() + 10
    while "/healthz" not in server.stdout.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    logs = server.stdout.read_text() + server.stderr.read_text()
    assert '"GET /healthz HTTP/1.1" 200' in logs
    assert marker not in logs
    assert "1970-01-01" not in logs


def test_a_missing_certificate_file_is_one_line_and_non_zero(server_env: dict[str, str]) -> None:
    result = careloop(
        "serve",
        "--bind",
        f"127.0.0.1:{free_port()}",
        "--cert",
        "/nonexistent/cert.pem",
        "--key",
        "/nonexistent/key.pem",
        env=server_env,
    )
    assert result.returncode != 0
    assert_one_line(result.stderr)
    assert "/nonexistent/cert.pem does not exist" in result.stderr


def test_a_file_that_is_not_a_certificate_is_one_line_and_non_zero(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    result = careloop(
        "serve",
        "--bind",
        f"127.0.0.1:{free_port()}",
        "--cert",
        str(junk),
        "--key",
        str(junk),
        env=server_env,
    )
    assert result.returncode != 0
    assert_one_line(result.stderr)
    assert "cannot use the certificate" in result.stderr


def test_a_port_in_use_is_one_line_and_non_zero(server: Server, server_env: dict[str, str]) -> None:
    result = careloop("serve", "--bind", f"127.0.0.1:{server.port}", env=server_env)
    assert result.returncode != 0
    assert_one_line(result.stderr)
    assert "already in use" in result.stderr


@pytest.mark.parametrize("bind", ["nonsense", "127.0.0.1:99999", "127.0.0.1:", ":8443"])
def test_a_bad_bind_is_one_line_and_non_zero(server_env: dict[str, str], bind: str) -> None:
    result = careloop("serve", "--bind", bind, env=server_env)
    assert result.returncode != 0
    assert_one_line(result.stderr)
    assert "--bind" in result.stderr


def test_an_unknown_option_is_one_line_and_non_zero(server_env: dict[str, str]) -> None:
    result = careloop("serve", "--no-such-option", env=server_env)
    assert result.returncode == 2
    assert_one_line(result.stderr)
    assert "--no-such-option" in result.stderr
    assert "careloop serve --help" in result.stderr


def production_env(env: dict[str, str], base: Path, **extra: str) -> dict[str, str]:
    # /healthz touches no database, so a fresh unencrypted file is enough here.
    return env | {
        "CARELOOP_ENV": "production",
        "CARELOOP_SECRET_KEY": "test-secret-key-for-the-server-tests",
        "CARELOOP_MASTER_KEY": "00" * 32,
        "CARELOOP_DATABASE_URL": f"sqlite:///{base / 'production.db'}",
        "CARELOOP_SQLITE_ENCRYPTION": "false",
        "CARELOOP_ALLOWED_HOSTS": "127.0.0.1",
        **extra,
    }


def test_production_without_a_certificate_refuses_to_serve(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = production_env(server_env, tmp_path)
    result = careloop("serve", "--bind", f"127.0.0.1:{free_port()}", env=env)
    assert result.returncode != 0
    assert_one_line(result.stderr)
    assert "CARELOOP_TLS_CERT" in result.stderr


def test_production_behind_a_proxy_serves_plain_http(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = production_env(server_env, tmp_path, CARELOOP_BEHIND_PROXY="true")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "careloop", "serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, "the server exited"
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/healthz", headers={"X-Forwarded-Proto": "https"})
                response = connection.getresponse()
                break
            except OSError:
                assert time.monotonic() < deadline, "no plain-HTTP answer"
                time.sleep(0.2)
        assert response.status == 200
        assert response.getheader("Strict-Transport-Security")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=STOP_TIMEOUT)
    assert process.returncode == 0
    assert b"Traceback" not in stderr


def test_the_self_signed_certificate_is_for_localhost_for_a_year_and_reused(
    tmp_path: Path,
) -> None:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from careloop.core.server.tls import self_signed_ensure

    pair = self_signed_ensure(directory=tmp_path / "tls")
    again = self_signed_ensure(directory=tmp_path / "tls")

    assert again == pair
    cert = x509.load_pem_x509_certificate(pair.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=365) <= lifetime <= dt.timedelta(days=366)
    assert (pair.key_file.stat().st_mode & 0o777) == 0o600
