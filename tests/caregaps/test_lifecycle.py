"""The care-gap lifecycle: a gap opens on overdue, closes when an import brings the fact
that closes it (with that fact, and the outreach message it is attributed to), is
excluded, or stops applying; never twice open; each change on the timeline.

CMS125 (breast cancer screening), period 2026, statuses as of 2026-12-01.
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from careloop.caregaps.evaluate import Period, measure_evaluate
from careloop.caregaps.gaps import care_gap_link_message
from careloop.caregaps.models import CareGap, GapResolution, GapState, MeasureRun
from careloop.caregaps.selectors_gaps import gap_closure_rates, patient_care_gaps
from careloop.clinical.models import ClinicalFact
from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.core.clock import now
from careloop.outreach.models import Message, MessageStatus
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_events
from tests.caregaps.fhir_resources import (
    HOSPICE_ENCOUNTER,
    MAMMOGRAM,
    encounter,
    import_resources,
    observation,
    patient,
    patient_ids,
)

pytestmark = pytest.mark.django_db

AS_OF = datetime.date(2026, 12, 1)
OVERDUE = ["reminded", "late", "linked", "hospice-later", "ages-out"]
TITLE = "Breast Cancer Screening (CMS125)"


@pytest.fixture
def practice(tmp_path: Path) -> dict[str, uuid.UUID]:
    resources = []
    for pid in [*OVERDUE, "met", "hospice"]:
        resources += [patient(pid, "1970-05-01"), encounter(pid, f"v-{pid}", "2026-03-10")]
    resources += [
        observation("met", "m-met", "2025-04-02", MAMMOGRAM, category="imaging"),
        encounter("hospice", "h-hospice", "2026-06-01", HOSPICE_ENCOUNTER),
    ]
    import_resources(tmp_path / "first", resources)
    return patient_ids()


def _evaluate() -> MeasureRun:
    return measure_evaluate(measure="CMS125", period=Period.year(2026), as_of=AS_OF)


def _gap(patient_id: uuid.UUID) -> CareGap:
    return CareGap.objects.get(patient_id=patient_id, measure="CMS125")


def _sent(patient_id: uuid.UUID, day: str, purpose: Purpose = Purpose.CARE_REMINDER) -> Message:
    """A message the outbox delivered on `day` (the outreach app's own tests cover
    sending; here it is the given state)."""
    at = datetime.datetime.fromisoformat(f"{day}T15:00:00+00:00")
    return Message.objects.create(
        patient=Patient.objects.get(pk=patient_id),
        purpose=purpose,
        channel=Channel.SMS,
        content_class=ContentClass.GENERIC,
        template_id="care-gap-reminder",
        address="+16175550101",
        body="You have a new secure message.",
        status=MessageStatus.DELIVERED,
        scheduled_reason="allowed",
        idempotency_key=f"test-{uuid.uuid4().hex}",
        next_attempt_at=at,
        created_at=at,
        sent_at=at,
        updated_at=at,
    )


def _gap_entries(patient_id: uuid.UUID) -> list[str]:
    events = timeline_events(patient=Patient.objects.get(pk=patient_id))
    return [e.summary for e in events if e.kind == TimelineKind.CARE_GAP]


def test_an_overdue_patient_gets_one_open_gap_however_often_it_is_evaluated(
    practice: dict[str, uuid.UUID],
) -> None:
    first = _evaluate()
    second = _evaluate()

    gaps = CareGap.objects.filter(measure="CMS125")
    assert sorted(practice_name(practice, g.patient_id) for g in gaps) == sorted(OVERDUE)
    assert {g.state for g in gaps} == {GapState.OPEN}
    assert {g.opened_run_id for g in gaps} == {first.pk}
    assert second.pk != first.pk
    assert _gap_entries(practice["reminded"]) == [f"Care gap opened: {TITLE}"]
    assert _gap_entries(practice["met"]) == []
    assert [g.measure for g in patient_care_gaps(patient_id=practice["late"])] == ["CMS125"]


def test_the_database_refuses_a_second_open_gap(practice: dict[str, uuid.UUID]) -> None:
    _evaluate()
    gap = _gap(practice["late"])

    with pytest.raises(IntegrityError), transaction.atomic():
        CareGap.objects.create(
            patient_id=gap.patient_id, measure="CMS125", group=1, opened_at=now()
        )


def test_an_imported_mammogram_closes_the_gap_with_its_fact_and_the_message_before_it(
    practice: dict[str, uuid.UUID], tmp_path: Path
) -> None:
    run = _evaluate()
    reminder = _sent(practice["reminded"], "2026-11-10")  # 10 days before the mammogram
    _sent(practice["late"], "2026-08-01")  # 111 days before: outside the 90-day window
    _sent(practice["linked"], "2026-11-18")
    linked = _sent(practice["linked"], "2026-10-25", purpose=Purpose.SURVEY)
    care_gap_link_message(care_gap=_gap(practice["linked"]), message=linked)

    import_resources(
        tmp_path / "mammograms",
        [
            observation(pid, f"m-{pid}", "2026-11-20", MAMMOGRAM, category="imaging")
            for pid in ["reminded", "late", "linked"]
        ],
    )

    closed = {pid: _gap(practice[pid]) for pid in ["reminded", "late", "linked"]}
    for pid, gap in closed.items():
        assert (gap.state, gap.resolution) == (GapState.CLOSED, GapResolution.MET)
        assert gap.closed_run_id == run.pk and gap.closed_at is not None
        assert gap.closing_fact == ClinicalFact.objects.get(source_id=f"m-{pid}", part=0)
    assert closed["reminded"].attributed_message_id == reminder.pk
    assert closed["late"].attributed_message_id is None
    # A message linked to the gap wins over a later care reminder.
    assert closed["linked"].attributed_message_id == linked.pk
    assert _gap_entries(practice["reminded"]) == [
        f"Care gap closed: {TITLE}, met",
        f"Care gap opened: {TITLE}",
    ]
    [rate] = gap_closure_rates(
        start=now() - datetime.timedelta(days=1),
        end=now() + datetime.timedelta(days=1),
        measure_ids=["CMS125"],
    )
    assert (rate.opened, rate.closed, rate.attributed) == (5, 3, 2)
    assert rate.rate == 3 / 5


def test_hospice_excludes_the_gap_and_leaving_the_measure_closes_it_as_not_applicable(
    practice: dict[str, uuid.UUID], tmp_path: Path
) -> None:
    _evaluate()

    import_resources(
        tmp_path / "changes",
        [
            encounter("hospice-later", "h-later", "2026-11-01", HOSPICE_ENCOUNTER),
            # The EHR corrects the birth date: 36 years old, no longer screened.
            patient("ages-out", "1990-05-01"),
        ],
    )

    excluded = _gap(practice["hospice-later"])
    assert (excluded.state, excluded.reason) == (GapState.EXCLUDED, "hospice")
    assert excluded.closed_at is not None and excluded.closing_fact is None
    gone = _gap(practice["ages-out"])
    assert (gone.state, gone.resolution) == (GapState.CLOSED, GapResolution.NOT_APPLICABLE)
    assert _gap_entries(practice["hospice-later"])[0] == f"Care gap excluded: {TITLE}, hospice"
    assert _gap_entries(practice["ages-out"])[0] == (
        f"Care gap closed: {TITLE}, no longer applicable"
    )
    assert CareGap.objects.filter(measure="CMS125", state=GapState.OPEN).count() == 3


def test_a_gap_that_lapses_again_opens_anew_and_keeps_its_history(
    practice: dict[str, uuid.UUID], tmp_path: Path
) -> None:
    _evaluate()
    import_resources(
        tmp_path / "m",
        [
            observation("late", "m-late", "2026-11-20", MAMMOGRAM, category="imaging"),
            encounter("late", "v-late-2029", "2029-03-10"),
        ],
    )

    # Two years on, the mammogram has lapsed.
    later = measure_evaluate(
        measure="CMS125", period=Period.year(2029), as_of=datetime.date(2029, 12, 1)
    )

    gaps = CareGap.objects.filter(patient_id=practice["late"]).order_by("opened_at")
    assert [g.state for g in gaps] == [GapState.CLOSED, GapState.OPEN]
    assert gaps[1].opened_run_id == later.pk


def test_a_run_on_a_past_period_leaves_the_gaps_alone(practice: dict[str, uuid.UUID]) -> None:
    _evaluate()
    before = sorted(CareGap.objects.values_list("id", "state"))

    # A report on 2025 evaluates the population as of that period's end.
    measure_evaluate(measure="CMS125", period=Period.year(2025), as_of=datetime.date(2025, 12, 31))

    assert sorted(CareGap.objects.values_list("id", "state")) == before


def practice_name(practice: dict[str, uuid.UUID], patient_id: uuid.UUID) -> str:
    return next(name for name, pk in practice.items() if pk == patient_id)
