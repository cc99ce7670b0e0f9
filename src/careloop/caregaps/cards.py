"""The patient page's care-gap cards: the patient's status in every measure's current
run, with why, what would close it (careloop.caregaps.texts) and when it is due."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from careloop.caregaps.evaluate import current_runs
from careloop.caregaps.measure import measures
from careloop.caregaps.models import GapStatus, PatientMeasureResult
from careloop.caregaps.texts import gap_text, gap_why
from careloop.caregaps.worklist_query import STATUS_ORDER
from careloop.patients.models import Patient
from careloop.security.audit import audit_record
from careloop.security.permissions import Actor, Op, Resource, actor_allowed


@dataclass(frozen=True)
class GapCard:
    measure_id: str
    title: str
    group: int
    groups: int
    status: str
    status_label: str
    why: str
    closes: str
    due_date: datetime.date | None


def patient_gap_cards(*, actor: Actor, patient: Patient) -> list[GapCard] | None:
    """The patient's status in every measure's current run, most urgent first; None for
    a role that may not read clinical data (the cards are not shown).

    The patient page that includes the cards has already checked scope; reading the
    statuses is audited as its own view of the patient's care gaps.
    """
    if not actor_allowed(actor, Op.READ, Resource.CLINICAL):
        return None
    runs = {run.pk: run for run in current_runs()}
    registry = measures()
    results = PatientMeasureResult.objects.filter(patient=patient, run_id__in=list(runs)).only(
        "run_id", "group", "status", "due_date", "reason"
    )
    cards = []
    for r in results:
        measure = registry.get(runs[r.run_id].measure)
        if measure is None:
            continue
        cards.append(
            GapCard(
                measure_id=measure.id,
                title=measure.title,
                group=r.group,
                groups=len(measure.groups),
                status=r.status,
                status_label=str(GapStatus(r.status).label) if r.status else "",
                why=gap_why(
                    measure_id=measure.id,
                    group=r.group,
                    status=r.status,
                    due_date=r.due_date,
                    reason=r.reason,
                ),
                closes=gap_text(measure.id, r.group).closes,
                due_date=r.due_date,
            )
        )
    rank = {status: i for i, status in enumerate(STATUS_ORDER)}
    cards.sort(
        key=lambda c: (rank.get(GapStatus(c.status), 9) if c.status else 9, c.measure_id, c.group)
    )
    if cards:
        audit_record(
            action="patient.view",
            actor=actor,
            patient_id=patient.pk,
            resource_type="PatientMeasureResult",
            resource_id="care_gaps",
            fields=("care_gaps", *sorted({c.measure_id for c in cards})),
        )
    return cards
