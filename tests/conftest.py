"""Shared fixtures: named personas and helpers for the whole suite."""

from __future__ import annotations

import pytest

from careloop.security import crypto


@pytest.fixture(autouse=True)
def _fresh_keyring() -> None:
    # Each test database has its own data keys; never reuse another database's keys.
    crypto.keyring.reset()
