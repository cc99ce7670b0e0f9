"""The patients app's sweep jobs."""

from __future__ import annotations

import datetime

from django.conf import settings

from careloop.core.sweep import sweep_job
from careloop.patients.lifecycle import lifecycle_sweep


@sweep_job("patients.lifecycle", every=60, lease=600)
def lifecycle() -> None:
    """Keep stages current as time passes (retention risk, dormancy): daily per patient."""
    lifecycle_sweep(batch=settings.LIFECYCLE_SWEEP_BATCH, stale_after=datetime.timedelta(days=1))
