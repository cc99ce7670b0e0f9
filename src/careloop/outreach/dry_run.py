"""Dry run: a journey over the real population, every step decided, nothing sent.

The journey's own engine runs (careloop.outreach.journeys), for the patients its
trigger finds now, inside a transaction that is rolled back: enrollments, messages
(decided by `may_contact` with the reason stored, as for real), tasks. Waits are
followed by running each step as of the time it would run, so quiet hours and dates
are those of the real schedule. Then everything is thrown away; the dispatcher never
sees an uncommitted message. What remains is the counts per step and channel, the
reasons, and a few rendered messages.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction

from careloop.core.clock import now
from careloop.outreach.journeys import MAX_STEPS_PER_ADVANCE, _Runner, definition_for
from careloop.outreach.models import Enrollment, EnrollmentStatus, Journey, Message, StaffTask
from careloop.outreach.triggers import Row, trigger_rows

# A journey followed further than this is cut off (a loop of long waits).
HORIZON = datetime.timedelta(days=400)


@dataclass
class StepCount:
    index: int
    kind: str
    label: str
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def ranked(self) -> list[tuple[str, int]]:
        # For templates: a Counter answers any attribute lookup with 0.
        return self.outcomes.most_common()


@dataclass
class Sample:
    channel: str
    language: str
    subject: str
    body: str


@dataclass
class DryRun:
    journey: Journey
    at: datetime.datetime
    found: int
    simulated: int
    steps: list[StepCount]
    ends: Counter[str]
    tasks: int
    samples: list[Sample]

    @property
    def ends_ranked(self) -> list[tuple[str, int]]:
        return self.ends.most_common()

    @property
    def truncated(self) -> bool:
        return self.simulated < self.found


class _Rollback(Exception):
    pass


def _label(step: dict[str, object]) -> str:
    kind = step.get("kind")
    if kind == "send":
        return f"send {step.get('template')} ({', '.join(map(str, step.get('channels', [])))})"  # type: ignore[call-overload]
    if kind == "branch":
        return f"if {step.get('if')}"
    if kind == "task":
        return f"task: {step.get('title')}"
    if kind == "wait":
        return "wait " + str(step.get("for") or step.get("until"))
    return str(kind)


def journey_dry_run(
    journey: Journey, *, at: datetime.datetime | None = None, limit: int = 200, samples: int = 3
) -> DryRun:
    """What `journey` would do for the patients its trigger finds now (the first
    `limit`), decided as for real and rolled back."""
    at = at or now()
    rows = trigger_rows(journey, at=at)
    chosen = rows[:limit]
    steps: list[StepCount] = []
    result = DryRun(journey, at, len(rows), len(chosen), steps, Counter(), 0, [])
    try:
        with transaction.atomic():
            _simulate(journey, chosen, at, result, samples)
            raise _Rollback
    except _Rollback:
        pass
    return result


def _simulate(
    journey: Journey,
    rows: list[Row],
    at: datetime.datetime,
    result: DryRun,
    samples: int,
) -> None:
    enrollments = [
        Enrollment.objects.create(
            journey=journey,
            journey_version=journey.version,
            patient_id=patient_id,
            trigger_key=f"dry-run:{key}"[:160],
            subject_type=subject_type,
            subject_id=subject_id,
            next_run_at=at,
            state={},
            enrolled_at=at,
            updated_at=at,
        )
        for patient_id, key, subject_type, subject_id in rows
    ]
    definition = definition_for(enrollments[0]) if enrollments else journey.definition
    result.steps.extend(
        StepCount(i, str(step.get("kind")), _label(step))
        for i, step in enumerate(definition.get("steps", []))
    )
    for enrollment in enrollments:
        enrollment = Enrollment.objects.select_related("journey", "patient").get(pk=enrollment.pk)
        when = at
        for _ in range(MAX_STEPS_PER_ADVANCE):
            _Runner(enrollment, when).run()
            enrollment.save()
            if enrollment.status != EnrollmentStatus.ACTIVE or enrollment.next_run_at is None:
                break
            when = max(when, enrollment.next_run_at)
            if when - at > HORIZON:
                break
        result.ends[enrollment.exit_reason or enrollment.status] += 1
        for step, kind, outcome in enrollment.events.values_list("step", "kind", "outcome"):
            if step < len(result.steps) and kind in ("send", "branch", "task"):
                result.steps[step].outcomes[outcome] += 1
    messages = Message.objects.filter(enrollment__in=enrollments)
    for index, channel, status, reason in messages.values_list(
        "step", "channel", "status", "scheduled_reason"
    ):
        if index is not None and index < len(result.steps):
            counts = result.steps[index].outcomes
            counts[f"{channel}: {status} ({reason})"] += 1
    for step_count in result.steps:
        if step_count.kind == "send":
            # The message rows say it better: channel, status and reason.
            for key in [k for k in step_count.outcomes if ":" not in k]:
                del step_count.outcomes[key]
    result.tasks = StaffTask.objects.filter(enrollment__in=enrollments).count()
    for message in messages.order_by("created_at")[:samples]:
        result.samples.append(
            Sample(message.channel, message.language, message.subject or "", message.body)
        )
