"""Configuration comes from CARELOOP_* variables; mistakes get one clear line."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from careloop.core.config import ConfigError, parse_database_url


def careloop(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("CARELOOP_") or k == "CI"
    }
    environment["CARELOOP_VAR_DIR"] = str(tmp_path / "var")
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "careloop", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


PRODUCTION = {
    "CARELOOP_ENV": "production",
    "CARELOOP_SECRET_KEY": secrets.token_urlsafe(50),
    "CARELOOP_MASTER_KEY": secrets.token_hex(32),
    "CARELOOP_DATABASE_URL": "postgres://careloop@127.0.0.1:5432/careloop",
    "CARELOOP_ALLOWED_HOSTS": "crm.example.org",
}


@pytest.mark.parametrize(
    "missing",
    [
        "CARELOOP_SECRET_KEY",
        "CARELOOP_MASTER_KEY",
        "CARELOOP_DATABASE_URL",
        "CARELOOP_ALLOWED_HOSTS",
    ],
)
def test_production_refuses_to_start_without_each_secret(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    assert_one_line_error(careloop(tmp_path, "check", **env), missing)


def test_production_settings_pass_djangos_deployment_checks(tmp_path: Path) -> None:
    result = careloop(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bad_database_url_is_one_line(tmp_path: Path) -> None:
    result = careloop(tmp_path, "migrate", CARELOOP_DATABASE_URL="mysql://db/careloop")
    assert_one_line_error(result, "CARELOOP_DATABASE_URL", "sqlite:///", "postgres://")


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = careloop(tmp_path, "migrate", CARELOOP_DATABASE_URL="postgres://x@127.0.0.1:1/db")
    assert_one_line_error(result, "database is not reachable", "CARELOOP_DATABASE_URL")


def test_a_master_key_of_the_wrong_size_is_one_line(tmp_path: Path) -> None:
    result = careloop(
        tmp_path,
        "migrate",
        CARELOOP_MASTER_KEY="abcd",
        CARELOOP_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
    )
    assert_one_line_error(result, "CARELOOP_MASTER_KEY", "64 hex digits")


def test_the_embedded_database_will_not_open_with_another_master_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = careloop(tmp_path, "migrate", "-v0", CARELOOP_DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    result = careloop(
        tmp_path, "migrate", CARELOOP_DATABASE_URL=url, CARELOOP_MASTER_KEY=secrets.token_hex(32)
    )
    assert_one_line_error(result, "cannot be opened with this master key")


@pytest.mark.parametrize(
    ("url", "engine", "name", "host", "port"),
    [
        ("sqlite:///var/careloop.db", "sqlite", "var/careloop.db", "", ""),
        ("sqlite:////srv/careloop/db.sqlite", "sqlite", "/srv/careloop/db.sqlite", "", ""),
        ("postgres://care@db.internal:6432/crm", "postgresql", "crm", "db.internal", "6432"),
        ("postgresql:///careloop", "postgresql", "careloop", "", ""),
    ],
)
def test_database_urls_parse(url: str, engine: str, name: str, host: str, port: str) -> None:
    parsed = parse_database_url(url)
    assert (parsed.engine, parsed.name, parsed.host, parsed.port) == (engine, name, host, port)


@pytest.mark.parametrize(
    "url", ["", "sqlite://", "sqlite://host/file.db", "postgres://host:5432/", "postgres://h:x/db"]
)
def test_malformed_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="CARELOOP_DATABASE_URL"):
        parse_database_url(url)
