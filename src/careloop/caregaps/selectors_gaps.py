"""Reads of the care-gap lifecycle: closure rates (the KPI) and a patient's gaps.

Closure rate over a period, per measure: gaps closed as met in the period over gaps
opened in the period, and how many of those closures an outreach message preceded
(CareGap.attributed_message). Counts only — no patient appears — so the KPI
dashboard can show them to roles that see aggregates.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.db.models import Count, Q

from careloop.caregaps.measure import measures
from careloop.caregaps.models import CareGap, GapResolution, GapState


@dataclass(frozen=True)
class ClosureRate:
    measure: str
    opened: int
    closed: int  # closed as met
    excluded: int
    not_applicable: int  # closed because the measure stopped applying
    attributed: int  # closed as met after an outreach message (within the window)

    @property
    def rate(self) -> float | None:
        """Closed / opened in the period (None when none opened)."""
        return self.closed / self.opened if self.opened else None

    @property
    def attributed_share(self) -> float | None:
        """The share of closures attributed to a message (None without closures)."""
        return self.attributed / self.closed if self.closed else None


def gap_closure_rates(
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    measure_ids: list[str] | None = None,
) -> list[ClosureRate]:
    """Per measure (registry order), what happened to gaps in [start, end): how many
    opened, and how many closed, were excluded or stopped applying — whenever those
    were opened."""
    wanted = [m.upper() for m in measure_ids] if measure_ids else list(measures())
    gaps = CareGap.objects.filter(measure__in=wanted)
    opened = {
        row["measure"]: row["n"]
        for row in gaps.filter(opened_at__gte=start, opened_at__lt=end)
        .values("measure")
        .annotate(n=Count("id"))
    }
    closed_in = Q(closed_at__gte=start, closed_at__lt=end)
    met = Q(state=GapState.CLOSED, resolution=GapResolution.MET)
    ended = {
        row["measure"]: row
        for row in gaps.filter(closed_in)
        .values("measure")
        .annotate(
            closed=Count("id", filter=met),
            excluded=Count("id", filter=Q(state=GapState.EXCLUDED)),
            not_applicable=Count("id", filter=Q(resolution=GapResolution.NOT_APPLICABLE)),
            attributed=Count("id", filter=met & Q(attributed_message__isnull=False)),
        )
    }
    return [
        ClosureRate(
            measure=measure_id,
            opened=opened.get(measure_id, 0),
            closed=ended.get(measure_id, {}).get("closed", 0),
            excluded=ended.get(measure_id, {}).get("excluded", 0),
            not_applicable=ended.get(measure_id, {}).get("not_applicable", 0),
            attributed=ended.get(measure_id, {}).get("attributed", 0),
        )
        for measure_id in wanted
    ]


def patient_care_gaps(*, patient_id: uuid.UUID, open_only: bool = False) -> list[CareGap]:
    """A patient's gaps, newest first (callers check access to the patient first:
    this is a domain read for services and views that already did)."""
    gaps = CareGap.objects.filter(patient_id=patient_id)
    if open_only:
        gaps = gaps.filter(state=GapState.OPEN)
    return list(gaps.order_by("-opened_at", "id"))
