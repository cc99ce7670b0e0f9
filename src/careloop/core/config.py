"""Reading careloop's configuration from the environment.

Every setting careloop reads from the environment is named here, with a `CARELOOP_`
prefix, so `settings.py` stays a list of plain assignments and the README can list
the variables from one place. A bad value raises `ConfigError` with a sentence a
person can act on; the CLI prints it as one line and exits non-zero.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = "CARELOOP_"


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message says how to fix it."""


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(PREFIX + name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = env(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{PREFIX}{name} must be true or false, not {raw!r}.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{PREFIX}{name} must be at least {minimum}, not {value}.")
    return value


def env_time_of_day(name: str, default: str) -> datetime.time:
    """A local time of day written HH:MM (24-hour), e.g. when a nightly job runs."""
    raw = (env(name) or default).strip()
    try:
        hours, minutes = (int(part) for part in raw.split(":"))
        return datetime.time(hours, minutes)
    except ValueError:
        raise ConfigError(
            f"{PREFIX}{name} must be a time of day like 02:00, not {raw!r}."
        ) from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class DatabaseURL:
    engine: str  # "sqlite" or "postgresql"
    name: str
    user: str = ""
    password: str = ""
    host: str = ""
    port: str = ""
    options: dict[str, str] | None = None


SQLITE_SCHEMES = {"sqlite"}
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}


def parse_database_url(url: str) -> DatabaseURL:
    """Parse `sqlite:///PATH` or `postgres://USER[:PASS]@HOST[:PORT]/DB[?opts]`.

    An empty host for PostgreSQL means the local Unix socket.
    """
    hint = (
        "Use sqlite:///path/to/careloop.db for the embedded database or "
        "postgres://USER@HOST:PORT/DBNAME for PostgreSQL."
    )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{PREFIX}DATABASE_URL is not a valid URL. {hint}") from None
    scheme = parts.scheme.lower()
    if scheme in SQLITE_SCHEMES:
        # sqlite:///relative/path has path "/relative/path"; sqlite:////abs has "//abs".
        path = unquote(parts.path)
        if parts.netloc:
            raise ConfigError(
                f"{PREFIX}DATABASE_URL for SQLite takes no host: write sqlite:///PATH. {hint}"
            )
        if path.startswith("//") or path.startswith("/"):
            path = path[1:]
        if not path:
            raise ConfigError(f"{PREFIX}DATABASE_URL names no SQLite file. {hint}")
        return DatabaseURL(engine="sqlite", name=path)
    if scheme in POSTGRES_SCHEMES:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ConfigError(f"{PREFIX}DATABASE_URL names no PostgreSQL database. {hint}")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        host = unquote(parts.hostname or "")
        if "host" in query:
            host = query.pop("host")
        return DatabaseURL(
            engine="postgresql",
            name=name,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            host=host,
            port=str(port or ""),
            options=query,
        )
    shown = scheme or "(none)"
    raise ConfigError(f"{PREFIX}DATABASE_URL has an unknown scheme {shown!r}. {hint}")


def sqlcipher_available() -> bool:
    try:
        import sqlcipher3  # noqa: F401
    except ImportError:
        return False
    return True


def django_database(url: DatabaseURL, *, sqlite_encrypted: bool) -> dict[str, Any]:
    """The `DATABASES["default"]` entry for a parsed URL.

    The embedded engine is SQLCipher (careloop.core.sqlcipher) whenever the binding is
    installed and encryption is not switched off; its key comes from the master key.
    """
    if url.engine == "sqlite":
        encrypted = sqlite_encrypted and sqlcipher_available()
        if url.name != ":memory:":
            Path(url.name).parent.mkdir(parents=True, exist_ok=True)
        entry: dict[str, Any] = {
            "ENGINE": "careloop.core.sqlcipher" if encrypted else "django.db.backends.sqlite3",
            "NAME": url.name,
            "OPTIONS": {
                # Wait for a lock rather than fail at once: web and worker share the file.
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
                ),
            },
            "TEST": {"NAME": ":memory:"},
        }
        return entry
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.name,
        "USER": url.user,
        "PASSWORD": url.password,
        "HOST": url.host,
        "PORT": url.port,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": dict(url.options or {}),
    }
