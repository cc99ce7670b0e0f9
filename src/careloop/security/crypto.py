"""Field-level encryption for PHI class I, and blind indexes for exact-match search.

Envelope: every class-I value is sealed with AES-256-GCM under a *data key*; data keys
are stored wrapped (encrypted) by the *master key*, which never touches the database.
A sealed value is

    b"\\x01" | key version (4 bytes, big-endian) | nonce (12 bytes) | ciphertext+tag

and its associated data names the table, column and row, so a ciphertext copied to
another row or column fails to open. Blind indexes are HMAC-SHA256 under a separate
key over a normalised value (careloop.security.normalize), truncated to 16 bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from careloop.core.config import ConfigError
from careloop.core.local_secrets import local_secret

FORMAT = b"\x01"
HEADER = 1 + 4 + 12
BLIND_BYTES = 16
ACTIVE_KEY_TTL_SECONDS = 30.0


class DecryptionError(Exception):
    """A sealed value could not be opened: wrong row, wrong column, tampered or unknown key."""


class MasterKey(Protocol):
    """What careloop needs of a master key; a cloud KMS can implement the same two calls."""

    def wrap(self, key: bytes, *, label: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, *, label: bytes) -> bytes: ...


@dataclass(frozen=True)
class LocalMasterKey:
    """A 256-bit master key held in memory (from the environment or the key file)."""

    secret: bytes

    def wrap(self, key: bytes, *, label: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.secret).encrypt(nonce, key, b"careloop-datakey|" + label)

    def unwrap(self, wrapped: bytes, *, label: bytes) -> bytes:
        try:
            return AESGCM(self.secret).decrypt(
                wrapped[:12], wrapped[12:], b"careloop-datakey|" + label
            )
        except InvalidTag:
            raise ConfigError(
                "The master key does not open careloop's data keys: CARELOOP_MASTER_KEY "
                "(or var/keys/master.key) is not the key this database was created with."
            ) from None


def _decode_master(raw: str) -> bytes:
    text = raw.strip()
    try:
        value = bytes.fromhex(text)
    except ValueError:
        import base64

        try:
            value = base64.b64decode(text, validate=True)
        except ValueError:
            value = b""
    if len(value) != 32:
        raise ConfigError(
            "CARELOOP_MASTER_KEY must be 32 random bytes written as 64 hex digits or base64 "
            "(make one with: python3 -c 'import secrets; print(secrets.token_hex(32))')."
        )
    return value


def master_key() -> MasterKey:
    raw = settings.MASTER_KEY or local_secret(settings.VAR_DIR, "master.key")
    return LocalMasterKey(_decode_master(raw))


def derive(purpose: bytes) -> bytes:
    """A 256-bit key for one purpose (e.g. the SQLCipher page key), derived from the master."""
    raw = settings.MASTER_KEY or local_secret(settings.VAR_DIR, "master.key")
    return HKDF(algorithm=SHA256(), length=32, salt=b"careloop", info=purpose).derive(
        _decode_master(raw)
    )


class KeyRing:
    """The process's view of the data keys: unwrapped once, cached, refreshed on demand.

    Keys are created by `keyring_ensure` after migrations (never inside a request
    transaction that might roll back), so a cached key always exists in the database.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._field: dict[int, AESGCM] = {}
        self._blind: bytes | None = None
        self._active: tuple[int, float] | None = None

    def reset(self) -> None:
        with self._lock:
            self._field.clear()
            self._blind = None
            self._active = None

    def _load(self, version: int | None = None) -> None:
        from careloop.security.models import DataKey

        master = master_key()
        rows = DataKey.objects.all() if version is None else DataKey.objects.filter(version=version)
        for row in rows:
            key = master.unwrap(bytes(row.wrapped), label=f"{row.purpose}:{row.version}".encode())
            if row.purpose == DataKey.Purpose.FIELD:
                self._field[row.version] = AESGCM(key)
            else:
                self._blind = key

    def active_version(self) -> int:
        from careloop.security.models import DataKey

        now = time.monotonic()
        with self._lock:
            if self._active and now - self._active[1] < ACTIVE_KEY_TTL_SECONDS:
                return self._active[0]
        version = (
            DataKey.objects.filter(purpose=DataKey.Purpose.FIELD, retired_at__isnull=True)
            .order_by("-version")
            .values_list("version", flat=True)
            .first()
        )
        if version is None:
            raise ConfigError(
                "careloop has no data encryption key yet: run `careloop migrate` first."
            )
        with self._lock:
            self._active = (version, now)
        return version

    def field_key(self, version: int) -> AESGCM:
        key = self._field.get(version)
        if key is None:
            with self._lock:
                self._load(version)
            key = self._field.get(version)
            if key is None:
                raise DecryptionError(f"unknown data key version {version}")
        return key

    def blind_key(self) -> bytes:
        if self._blind is None:
            with self._lock:
                self._load()
            if self._blind is None:
                raise ConfigError(
                    "careloop has no blind-index key yet: run `careloop migrate` first."
                )
        return self._blind


keyring = KeyRing()


def associated_data(table: str, column: str, row_id: object) -> bytes:
    return f"careloop|{table}|{column}|{row_id}".encode()


def seal(
    plaintext: str, *, table: str, column: str, row_id: object, version: int | None = None
) -> bytes:
    """Encrypt one class-I value for one (table, column, row)."""
    version = keyring.active_version() if version is None else version
    nonce = os.urandom(12)
    ciphertext = keyring.field_key(version).encrypt(
        nonce, plaintext.encode(), associated_data(table, column, row_id)
    )
    return FORMAT + version.to_bytes(4, "big") + nonce + ciphertext


def sealed_version(sealed: bytes) -> int:
    if len(sealed) < HEADER or sealed[:1] != FORMAT:
        raise DecryptionError("not a careloop sealed value")
    return int.from_bytes(sealed[1:5], "big")


def open_sealed(sealed: bytes, *, table: str, column: str, row_id: object) -> str:
    """Decrypt a value sealed by `seal` for exactly this (table, column, row)."""
    version = sealed_version(sealed)
    try:
        plaintext = keyring.field_key(version).decrypt(
            sealed[5:HEADER], sealed[HEADER:], associated_data(table, column, row_id)
        )
    except InvalidTag:
        raise DecryptionError(
            f"sealed value does not belong to {table}.{column} of this row, or was altered"
        ) from None
    return plaintext.decode()


def blind_index(normalized: str, *, kind: str) -> bytes:
    """HMAC of an already normalised value; `kind` keeps e.g. names and phones apart."""
    message = kind.encode() + b"\x00" + normalized.encode()
    return hmac.new(keyring.blind_key(), message, hashlib.sha256).digest()[:BLIND_BYTES]
