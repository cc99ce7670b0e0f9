"""The patient timeline: the one place every touchpoint is written to and read from."""

from __future__ import annotations

import datetime

from careloop.core.clock import now
from careloop.patients.models import Patient, TimelineEvent, TimelineKind
from careloop.security.models import User


def timeline_add(
    *,
    patient: Patient,
    kind: TimelineKind,
    summary: str,
    at: datetime.datetime | None = None,
    actor: User | None = None,
    ref_type: str = "",
    ref_id: str = "",
) -> TimelineEvent:
    """Record a touchpoint. `summary` is built from coded values only, never free text."""
    return TimelineEvent.objects.create(
        patient=patient,
        at=at or now(),
        kind=kind,
        summary=summary[:200],
        actor=actor,
        ref_type=ref_type,
        ref_id=ref_id,
    )


def timeline_events(*, patient: Patient, limit: int = 50) -> list[TimelineEvent]:
    """Newest first."""
    return list(patient.timeline.select_related("actor").order_by("-at", "-id")[:limit])
