"""Creating data keys. Keys are created here only: after migrations and by rotation."""

from __future__ import annotations

import os

from django.db import IntegrityError, transaction
from django.db.models import Max

from careloop.core.clock import now
from careloop.security import crypto
from careloop.security.models import DataKey


def _add_key(purpose: str) -> DataKey:
    version = (DataKey.objects.aggregate(top=Max("version"))["top"] or 0) + 1
    wrapped = crypto.master_key().wrap(os.urandom(32), label=f"{purpose}:{version}".encode())
    return DataKey.objects.create(
        version=version, purpose=purpose, wrapped=wrapped, created_at=now()
    )


def add_field_key() -> DataKey:
    """A new field key, which becomes the active one (rotation)."""
    with transaction.atomic():
        return _add_key(DataKey.Purpose.FIELD)


def keyring_ensure(using: str = "default") -> None:
    """Make sure a field key and the blind-index key exist (idempotent, race-safe)."""
    for purpose in (DataKey.Purpose.FIELD, DataKey.Purpose.BLIND):
        if DataKey.objects.using(using).filter(purpose=purpose).exists():
            continue
        try:
            with transaction.atomic(using=using):
                _add_key(purpose)
        except IntegrityError:
            # Another process created it between our check and our insert.
            continue
    crypto.keyring.reset()
