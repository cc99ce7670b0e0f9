"""Portal fixtures: a loopback push service that careloop is configured to use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.portal.push_service import PushService, push_service_running


@pytest.fixture
def push_service(settings: Any) -> Iterator[PushService]:
    yield from push_service_running(settings)
