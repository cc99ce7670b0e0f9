"""Journeys: a trigger, steps and exit conditions, run for each enrolled patient.

A journey is data (`Journey.definition`), validated here and edited by an admin:

    {"steps": [{"kind": "wait", "until": {"anchor": "subject", "offset": "-P7D",
                                          "at_local": "10:00"}, "if_past": "skip_next"},
               {"kind": "send", "template": "previsit-7d", "channels": ["sms", "email"]},
               {"kind": "branch", "if": "appointment_confirmed", "then": "end"},
               {"kind": "task", "title": "Call to confirm", "queue": "front-desk"}],
     "exits": ["subject_cancelled", "opted_out"]}

Enrolment is a row per (journey, patient, triggering event), so an event seen twice
enrols once (careloop.outreach.triggers finds the events, set-based). The sweep claims
due enrollments under a lease and a fencing token, like the outbox, and runs their
steps in one transaction with the messages and tasks they write, so a crash repeats a
step's transaction, never half of it; a message's idempotency key is its enrollment and
step. Exit conditions are checked before every step. Routine and marketing journeys
pause while a patient is admitted or in hospice (`suppression`).

Times are instants; a wait "at 10:00 local" is placed in the patient's time zone: a
local time in a spring-forward gap moves forward by the gap, one in a repeated autumn
hour takes its first occurrence, so it fires once.
"""

from __future__ import annotations

import datetime
import re
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django_tasks_db.utils import exclusive_transaction

from careloop.clinical.models import ClinicalFact, FactKind
from careloop.consent.decisions import Reason, may_contact
from careloop.consent.models import Channel, CommunicationPreference, ContentClass, Purpose
from careloop.core.clock import now
from careloop.outreach.models import (
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Journey,
    JourneyRevision,
    Message,
    StaffTask,
)
from careloop.outreach.outbox import About, address_for, message_enqueue
from careloop.patients.models import LifecycleStage, Patient
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Op, Resource, require

STEP_KINDS = ("wait", "send", "branch", "task", "update", "exit")
SEND_CHANNELS = tuple(Channel.values)
# At most this many steps run in one advance: a definition that loops without a wait
# cannot hold a worker.
MAX_STEPS_PER_ADVANCE = 25
# Purposes that clinical context (admitted, hospice) pauses; logistics about a booked
# appointment still go out.
ROUTINE_PURPOSES = frozenset({Purpose.CARE_REMINDER, Purpose.MARKETING, Purpose.SURVEY})
_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)
_LOCAL_TIME = re.compile(r"^(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)$")
_STEP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class JourneyInvalid(ValueError):
    """A definition that cannot run; `errors` say where and why (coded, no PHI)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


# --- durations and local times ------------------------------------------------------------


def parse_duration(text: str) -> datetime.timedelta:
    """ISO 8601 days, hours and minutes ("P7D", "-P2D", "PT4H", "P1DT30M")."""
    match = _DURATION.match(text or "")
    if match is None or text in ("P", "-P", "PT", "-PT"):
        raise ValueError(f"not a duration: {text!r} (use e.g. P7D, PT4H, -P2D)")
    delta = datetime.timedelta(
        days=int(match["days"] or 0),
        hours=int(match["hours"] or 0),
        minutes=int(match["minutes"] or 0),
    )
    return -delta if match["sign"] else delta


def at_local_time(
    instant: datetime.datetime, local: str, zone: str, *, not_before: bool = False
) -> datetime.datetime:
    """The instant at wall time `local` ("HH:MM") on `instant`'s local day in `zone`.

    A wall time that does not exist (spring forward) is moved forward by the gap; one
    that happens twice (fall back) is the first. With `not_before`, a time already past
    on that day moves to the next day.
    """
    match = _LOCAL_TIME.match(local)
    if match is None:
        raise ValueError(f"not a local time: {local!r} (use HH:MM)")
    tz = zoneinfo.ZoneInfo(zone)
    day = instant.astimezone(tz).date()
    for _ in range(2):
        wall = datetime.datetime.combine(day, datetime.time(int(match["h"]), int(match["m"])))
        # fold=0: the first of a repeated hour; in a gap, the offset before the
        # transition, which lands after the gap by its length once normalised.
        at = wall.replace(tzinfo=tz, fold=0).astimezone(datetime.UTC)
        if not not_before or at >= instant:
            return at
        day += datetime.timedelta(days=1)
    return at


# --- validation ---------------------------------------------------------------------------


def journey_validate(definition: Mapping[str, Any]) -> list[str]:
    """What is wrong with a definition ([] when it can run)."""
    errors: list[str] = []
    steps = definition.get("steps")
    if not isinstance(steps, list) or not steps:
        return ["steps: a journey needs at least one step"]
    ids: set[str] = set()
    for index, step in enumerate(steps, start=1):
        if not isinstance(step, dict):
            errors.append(f"step {index}: not an object")
            continue
        step_id = step.get("id")
        if step_id is not None:
            if not isinstance(step_id, str) or not _STEP_ID.match(step_id):
                errors.append(f"step {index}: id must be lower-case letters, digits and dashes")
            elif step_id in ids:
                errors.append(f"step {index}: id {step_id!r} is used twice")
            else:
                ids.add(step_id)
    for index, step in enumerate(steps, start=1):
        if isinstance(step, dict):
            errors.extend(f"step {index}: {e}" for e in _step_errors(step, ids))
    errors.extend(
        f"exits: unknown condition {name!r} (one of {', '.join(EXITS)})"
        for name in definition.get("exits", [])
        if name not in EXITS
    )
    return errors


def _target_ok(target: Any, ids: set[str]) -> bool:
    return target in ("next", "end") or target in ids


def _step_errors(step: dict[str, Any], ids: set[str]) -> list[str]:
    kind = step.get("kind")
    if kind not in STEP_KINDS:
        return [f"kind must be one of {', '.join(STEP_KINDS)}"]
    errors: list[str] = []
    if kind == "wait":
        if ("for" in step) == ("until" in step):
            errors.append("a wait has either 'for' (a duration) or 'until'")
        if "for" in step:
            errors.extend(_duration_errors(step["for"], "for", positive=True))
        if "until" in step:
            until = step["until"]
            if not isinstance(until, dict) or until.get("anchor") not in ("subject", "now"):
                errors.append("until.anchor must be 'subject' or 'now'")
            else:
                if "offset" in until:
                    errors.extend(_duration_errors(until["offset"], "until.offset"))
                if "at_local" in until and not _LOCAL_TIME.match(str(until["at_local"])):
                    errors.append("until.at_local must be HH:MM")
        if step.get("if_past", "run") not in ("run", "skip_next"):
            errors.append("if_past must be 'run' or 'skip_next'")
    elif kind == "send":
        if not isinstance(step.get("template"), str) or not step["template"]:
            errors.append("a send names a template")
        channels = step.get("channels")
        if not isinstance(channels, list) or not channels:
            errors.append("a send lists its channels in fallback order")
        else:
            errors.extend(f"unknown channel {c!r}" for c in channels if c not in SEND_CHANNELS)
    elif kind == "branch":
        if step.get("if") not in CONDITIONS:
            errors.append(f"branch 'if' must be one of {', '.join(CONDITIONS)}")
        errors.extend(
            f"branch '{key}' goes to an unknown step {step.get(key)!r}"
            for key in ("then", "else")
            if not _target_ok(step.get(key, "next"), ids)
        )
    elif kind == "task":
        title = step.get("title")
        if not isinstance(title, str) or not 3 <= len(title) <= 160:
            errors.append("a task has a title of 3 to 160 characters")
        if "due" in step:
            errors.extend(_duration_errors(step["due"], "due"))
    elif kind == "update":
        if step.get("field") not in UPDATES:
            errors.append(f"update 'field' must be one of {', '.join(UPDATES)}")
        elif not UPDATES[step["field"]](step.get("value")):
            errors.append(f"update value {step.get('value')!r} is not allowed")
    elif kind == "exit" and not isinstance(step.get("reason", "done"), str):
        errors.append("an exit reason is a word")
    return errors


def _duration_errors(value: Any, where: str, *, positive: bool = False) -> list[str]:
    try:
        delta = parse_duration(str(value))
    except ValueError as error:
        return [f"{where}: {error}"]
    if positive and delta <= datetime.timedelta(0):
        return [f"{where}: must be longer than zero"]
    return []


# --- conditions and exits -----------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    enrollment: Enrollment
    patient: Patient
    at: datetime.datetime

    def appointment(self) -> Appointment | None:
        if self.enrollment.subject_type != "appointment":
            return None
        return Appointment.objects.filter(pk=self.enrollment.subject_id).first()

    def gap(self) -> Any:
        from careloop.caregaps.models import CareGap

        if self.enrollment.subject_type != "caregap":
            return None
        return CareGap.objects.filter(pk=self.enrollment.subject_id).first()


def _appointment_in(ctx: Context, statuses: set[str]) -> bool:
    appointment = ctx.appointment()
    return appointment is not None and appointment.status in statuses


def _booked_since(ctx: Context) -> bool:
    """A new appointment, booked after the enrolment, still ahead."""
    return Appointment.objects.filter(
        patient=ctx.patient,
        created_at__gt=ctx.enrollment.enrolled_at,
        start__gt=ctx.at,
        status__in=(AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED),
    ).exists()


def _gap_closed(ctx: Context) -> bool:
    gap = ctx.gap()
    return gap is not None and gap.state != "open"


def _gap_overdue(ctx: Context) -> bool:
    gap = ctx.gap()
    return gap is not None and (gap.due_date is None or gap.due_date <= ctx.at.date())


def _replied(ctx: Context) -> bool:
    return (
        Message.objects.filter(enrollment=ctx.enrollment, replied_at__isnull=False).exists()
        or ctx.patient.inbound_messages.filter(received_at__gte=ctx.enrollment.enrolled_at).exists()
    )


def _onboarding_complete(ctx: Context) -> bool:
    from careloop.consent.ledger import consent_current
    from careloop.consent.models import ConsentKind, ConsentStatus

    signed = all(
        consent_current(patient=ctx.patient, kind=kind, at=ctx.at) == ConsentStatus.GRANTED
        for kind in (ConsentKind.TREATMENT, ConsentKind.NPP_ACK)
    )
    return signed and ctx.patient.coverages.exists()


def _opted_out(ctx: Context) -> bool:
    """The patient said no (STOP, an unsubscribe, do-not-contact) on every channel that
    could carry this journey; never having said yes is not opting out (those messages
    are kept, withheld with their reason)."""
    purpose = Journey.objects.values_list("purpose", flat=True).get(pk=ctx.enrollment.journey_id)
    refused = False
    for channel in (Channel.SMS, Channel.EMAIL, Channel.VOICE, Channel.PORTAL):
        decision = may_contact(ctx.patient, channel, purpose, ContentClass.GENERIC, ctx.at)
        if decision.allowed or decision.retry_at is not None:
            return False
        refused |= decision.reason in (Reason.OPTED_OUT, Reason.DO_NOT_CONTACT)
    return refused


def _stage_changed(ctx: Context) -> bool:
    entered = ctx.enrollment.state.get("stage")
    return bool(entered) and ctx.patient.lifecycle_stage != entered


def _deceased(ctx: Context) -> bool:
    return (
        ctx.patient.deceased_on is not None
        or ctx.patient.lifecycle_stage == LifecycleStage.DECEASED
    )


def _admitted(ctx: Context) -> bool:
    return ClinicalFact.objects.filter(
        patient=ctx.patient,
        kind=FactKind.ENCOUNTER,
        category="inpatient",
        status="in-progress",
        effective_end__isnull=True,
    ).exists()


def _in_hospice(ctx: Context) -> bool:
    """An active hospice encounter or order (the measures' hospice value sets)."""
    from careloop.caregaps.library import (
        HOSPICE_CARE_AMBULATORY,
        HOSPICE_DIAGNOSIS,
        HOSPICE_ENCOUNTER,
    )
    from careloop.caregaps.terminology import valueset_members

    members = valueset_members(
        oids=[vs.oid for vs in (HOSPICE_CARE_AMBULATORY, HOSPICE_DIAGNOSIS, HOSPICE_ENCOUNTER)]
    )
    coded = Q()
    for system, codes in members.items():
        coded |= Q(system=system, code__in=codes)
    if not coded:
        return False
    since = ctx.at - datetime.timedelta(days=365)
    return (
        ClinicalFact.objects.filter(patient=ctx.patient, effective_start__gte=since)
        .filter(coded)
        .filter(Q(effective_end__isnull=True) | Q(effective_end__gte=ctx.at))
        .exists()
    )


CONDITIONS: dict[str, Callable[[Context], bool]] = {
    "appointment_confirmed": lambda c: _appointment_in(c, {AppointmentStatus.CONFIRMED}),
    "appointment_cancelled": lambda c: _appointment_in(
        c, {AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW}
    ),
    "appointment_booked": _booked_since,
    "visit_completed": lambda c: _appointment_in(c, {AppointmentStatus.FULFILLED}),
    "gap_closed": _gap_closed,
    "gap_overdue": _gap_overdue,
    "replied": _replied,
    "onboarding_complete": _onboarding_complete,
}
EXITS: dict[str, Callable[[Context], bool]] = {
    "appointment_booked": _booked_since,
    "gap_closed": _gap_closed,
    "onboarding_complete": _onboarding_complete,
    "subject_cancelled": CONDITIONS["appointment_cancelled"],
    "visit_completed": CONDITIONS["visit_completed"],
    "opted_out": _opted_out,
    "stage_changed": _stage_changed,
    "deceased": _deceased,
    "admitted": _admitted,
}
# Every journey stops for these, whatever its definition says.
ALWAYS_EXIT = ("deceased",)
# What an update step may change: a tag on the patient (added, or removed with "-").
_TAG = re.compile(r"^-?[a-z0-9][a-z0-9-]{0,38}$")
UPDATES: dict[str, Callable[[Any], bool]] = {
    "tag": lambda value: isinstance(value, str) and bool(_TAG.match(value)),
}


def suppression(ctx: Context, purpose: str) -> str:
    """Why routine and marketing outreach is paused for the patient now ("" if not)."""
    if purpose not in ROUTINE_PURPOSES:
        return ""
    if _admitted(ctx):
        return "admitted"
    if _in_hospice(ctx):
        return "hospice"
    return ""


# --- saving a journey ---------------------------------------------------------------------


@transaction.atomic
def journey_save(
    journey: Journey,
    *,
    definition: Mapping[str, Any] | None = None,
    trigger_filter: Mapping[str, Any] | None = None,
    enabled: bool | None = None,
    name: str | None = None,
    actor: User | None = None,
) -> Journey:
    """Validate and store an edit as a new version; the old one stays for its enrollments."""
    if actor is not None:
        require(actor, Op.WRITE, Resource.CONFIG)
    if definition is not None:
        errors = journey_validate(definition)
        if errors:
            raise JourneyInvalid(errors)
        journey.definition = dict(definition)
    if trigger_filter is not None:
        journey.trigger_filter = dict(trigger_filter)
    if enabled is not None:
        journey.enabled = enabled
    if name is not None:
        journey.name = name.strip()[:120] or journey.name
    if not journey._state.adding:
        journey.version += 1
    journey.updated_at, journey.updated_by = now(), actor
    journey.save()
    JourneyRevision.objects.update_or_create(
        journey=journey,
        version=journey.version,
        defaults={
            "definition": journey.definition,
            "trigger_filter": journey.trigger_filter,
            "enabled": journey.enabled,
            "saved_at": journey.updated_at,
            "saved_by": actor,
        },
    )
    if actor is not None:
        audit_record(
            action="journey.save",
            actor=actor,
            resource_type="journey",
            resource_id=str(journey.pk),
        )
    return journey


def definition_for(enrollment: Enrollment) -> dict[str, Any]:
    """The version of the journey the enrollment started with."""
    journey = enrollment.journey
    revision = (
        None
        if journey.version == enrollment.journey_version
        else JourneyRevision.objects.filter(
            journey=journey, version=enrollment.journey_version
        ).first()
    )
    definition: dict[str, Any] = (revision or journey).definition
    return definition


# --- enrolment ----------------------------------------------------------------------------


def journey_enroll(
    journey: Journey,
    *,
    patient: Patient,
    trigger_key: str,
    subject_type: str = "",
    subject_id: str = "",
    at: datetime.datetime | None = None,
    actor: User | None = None,
) -> Enrollment:
    """Enrol once per (journey, patient, event); the existing enrollment if already in."""
    if actor is not None:
        require(actor, Op.WRITE, Resource.MESSAGES, patient_id=patient.pk)
    at = at or now()
    existing = Enrollment.objects.filter(
        journey=journey, patient=patient, trigger_key=trigger_key
    ).first()
    if existing is not None:
        return existing
    enrollment = Enrollment(
        journey=journey,
        journey_version=journey.version,
        patient=patient,
        trigger_key=trigger_key[:160],
        subject_type=subject_type,
        subject_id=subject_id,
        next_run_at=at,
        state={"stage": patient.lifecycle_stage},
        enrolled_at=at,
        updated_at=at,
    )
    try:
        with transaction.atomic():
            enrollment.save(force_insert=True)
    except IntegrityError:
        return Enrollment.objects.get(journey=journey, patient=patient, trigger_key=trigger_key)
    if actor is not None:
        audit_record(
            action="journey.enroll",
            actor=actor,
            patient_id=patient.pk,
            resource_type="enrollment",
            resource_id=str(enrollment.pk),
        )
    return enrollment


def journeys_enroll_rows(
    journey: Journey, rows: list[tuple[uuid.UUID, str, str, str]], *, at: datetime.datetime
) -> int:
    """Enrol many (patient id, trigger key, subject type, subject id) at once; new ones."""
    if not rows:
        return 0
    stages = dict(
        Patient.objects.filter(pk__in={r[0] for r in rows}).values_list("pk", "lifecycle_stage")
    )
    before = Enrollment.objects.filter(journey=journey).count()
    Enrollment.objects.bulk_create(
        [
            Enrollment(
                journey=journey,
                journey_version=journey.version,
                patient_id=patient_id,
                trigger_key=key[:160],
                subject_type=subject_type,
                subject_id=subject_id,
                next_run_at=at,
                state={"stage": stages.get(patient_id, "")},
                enrolled_at=at,
                updated_at=at,
            )
            for patient_id, key, subject_type, subject_id in rows
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return Enrollment.objects.filter(journey=journey).count() - before


def journey_exit(enrollment: Enrollment, reason: str, *, actor: User | None = None) -> None:
    """Take a patient out of a journey (staff, or an exit condition)."""
    at = now()
    Enrollment.objects.filter(pk=enrollment.pk, status=EnrollmentStatus.ACTIVE).update(
        status=EnrollmentStatus.EXITED,
        exit_reason=reason[:32],
        ended_at=at,
        next_run_at=None,
        updated_at=at,
    )
    _event(enrollment, enrollment.step, "exit", reason, at=at)
    if actor is not None:
        audit_record(
            action="journey.exit",
            actor=actor,
            patient_id=enrollment.patient_id,
            resource_type="enrollment",
            resource_id=str(enrollment.pk),
        )


def journeys_wake(*, patient_id: uuid.UUID) -> int:
    """Run a patient's waiting enrollments now (a reply came, an appointment changed)."""
    return Enrollment.objects.filter(
        patient_id=patient_id, status=EnrollmentStatus.ACTIVE, next_run_at__gt=now()
    ).update(next_run_at=now())


# --- running ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    enrollment_id: uuid.UUID
    token: int


def _due(at: datetime.datetime) -> Q:
    lease_free = Q(lease_until__isnull=True) | Q(lease_until__lt=at)
    return Q(status=EnrollmentStatus.ACTIVE, next_run_at__lte=at) & lease_free


def enrollments_claim(*, owner: str, limit: int) -> list[Claim]:
    at = now()
    with exclusive_transaction():
        ids = list(
            Enrollment.objects.filter(_due(at))
            .order_by("next_run_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Enrollment.objects.filter(_due(at), id__in=ids).update(
            lease_owner=owner,
            lease_until=at + datetime.timedelta(seconds=settings.OUTREACH_LEASE_SECONDS),
            fencing_token=F("fencing_token") + 1,
        )
        claimed = Enrollment.objects.filter(id__in=ids, lease_owner=owner)
        return [Claim(pk, token) for pk, token in claimed.values_list("id", "fencing_token")]


def enrollments_advance(*, limit: int = 200, owner: str | None = None) -> Counter[str]:
    """Run the due steps of up to `limit` enrollments; outcomes counted."""
    from careloop.outreach.dispatch import new_owner  # dispatch -> inbound -> journeys

    owner = owner or new_owner()
    outcomes: Counter[str] = Counter()
    while limit > 0:
        claims = enrollments_claim(owner=owner, limit=min(20, limit))
        if not claims:
            break
        limit -= len(claims)
        for claim in claims:
            outcomes[enrollment_advance(claim)] += 1
    return outcomes


@transaction.atomic
def enrollment_advance(claim: Claim) -> str:
    """Run one enrollment's steps until it waits, ends or exits; the outcome's name."""
    enrollment = (
        Enrollment.objects.select_related("journey", "patient")
        .select_for_update()
        .filter(pk=claim.enrollment_id, fencing_token=claim.token)
        .first()
    )
    if enrollment is None or enrollment.status != EnrollmentStatus.ACTIVE:
        return "lost"
    outcome = _Runner(enrollment, now()).run()
    enrollment.lease_owner, enrollment.lease_until = "", None
    enrollment.updated_at = now()
    enrollment.save()
    return outcome


class _Runner:
    """Runs an enrollment's steps as of `at` (now; a later time in a dry run)."""

    def __init__(self, enrollment: Enrollment, at: datetime.datetime) -> None:
        self.enrollment = enrollment
        self.at = at
        self.ctx = Context(enrollment, enrollment.patient, self.at)
        definition = definition_for(enrollment)
        self.steps: list[dict[str, Any]] = definition.get("steps", [])
        self.exits: list[str] = [*ALWAYS_EXIT, *definition.get("exits", [])]
        self.purpose = enrollment.journey.purpose

    def run(self) -> str:
        e = self.enrollment
        for _ in range(MAX_STEPS_PER_ADVANCE):
            for name in self.exits:
                if EXITS[name](self.ctx):
                    return self._end(EnrollmentStatus.EXITED, name)
            if e.step >= len(self.steps):
                return self._end(EnrollmentStatus.COMPLETED, "")
            paused = suppression(self.ctx, self.purpose)
            if paused:
                e.next_run_at = self.at + datetime.timedelta(days=1)
                _event(e, e.step, "pause", paused, at=self.at)
                return "paused"
            step = self.steps[e.step]
            run_step: Callable[[dict[str, Any]], str | None] = getattr(self, f"_{step['kind']}")
            outcome = run_step(step)
            if outcome is not None:
                return outcome
        e.next_run_at = self.at + datetime.timedelta(minutes=5)
        return "yielded"

    def _end(self, status: EnrollmentStatus, reason: str) -> str:
        e = self.enrollment
        e.status, e.exit_reason, e.ended_at, e.next_run_at = status, reason, self.at, None
        _event(e, e.step, "end", reason or "completed", at=self.at)
        return "exited" if status == EnrollmentStatus.EXITED else "completed"

    def _goto(self, target: str) -> None:
        e = self.enrollment
        if target == "next":
            e.step += 1
        elif target == "end":
            e.step = len(self.steps)
        else:
            e.step = next(i for i, s in enumerate(self.steps) if s.get("id") == target)

    def _wait(self, step: dict[str, Any]) -> str | None:
        e = self.enrollment
        waiting = e.state.get("waiting")
        if waiting is not None and waiting.get("step") == e.step:
            ends = datetime.datetime.fromisoformat(waiting["until"])
            if ends > self.at:
                e.next_run_at = ends
                return "waiting"
            e.state = {k: v for k, v in e.state.items() if k != "waiting"}
            self._goto("next")
            return None
        until = self._until(step)
        if until is None or until <= self.at:
            late = until is None or self.at - until > datetime.timedelta(hours=1)
            skip = late and step.get("if_past", "run") == "skip_next"
            _event(e, e.step, "wait", "skipped_past" if skip else "already_due", at=self.at)
            e.step += 2 if skip else 1
            return None
        e.state = {**e.state, "waiting": {"step": e.step, "until": until.isoformat()}}
        e.next_run_at = until
        _event(e, e.step, "wait", "until", at=self.at)
        return "waiting"

    def _until(self, step: dict[str, Any]) -> datetime.datetime | None:
        zone = self.ctx.patient.time_zone or settings.TIME_ZONE
        if "for" in step:
            return self.at + parse_duration(step["for"])
        until = step["until"]
        if until["anchor"] == "subject":
            base = self._subject_time()
            if base is None:
                return None
            appointment = self.ctx.appointment()
            if appointment is not None:
                zone = appointment.location.time_zone
        else:
            base = self.at
        offset = parse_duration(until.get("offset", "P0D"))
        base += offset
        if "at_local" in until:
            # "now" with no offset is the next such time; otherwise that day's.
            upcoming = until["anchor"] == "now" and not offset
            return at_local_time(base, until["at_local"], zone, not_before=upcoming)
        return base

    def _subject_time(self) -> datetime.datetime | None:
        appointment = self.ctx.appointment()
        if appointment is not None:
            return appointment.start
        gap = self.ctx.gap()
        if gap is not None and gap.due_date is not None:
            return datetime.datetime.combine(gap.due_date, datetime.time(12), tzinfo=datetime.UTC)
        return None

    def _send(self, step: dict[str, Any]) -> str | None:
        e = self.enrollment
        message = journey_send(
            patient=self.ctx.patient,
            template_key=step["template"],
            channels=step["channels"],
            purpose=step.get("purpose", self.purpose),
            idempotency_key=f"journey:{e.pk}:{e.step}",
            appointment=self.ctx.appointment(),
            gap=self.ctx.gap(),
            enrollment=e,
            at=self.at,
        )
        _event(
            e,
            e.step,
            "send",
            message.status if message else "no_template",
            at=self.at,
            message=message,
        )
        e.step += 1
        return None

    def _branch(self, step: dict[str, Any]) -> str | None:
        taken = CONDITIONS[step["if"]](self.ctx)
        _event(self.enrollment, self.enrollment.step, "branch", f"{step['if']}={taken}", at=self.at)
        self._goto(step.get("then", "next") if taken else step.get("else", "next"))
        return None

    def _task(self, step: dict[str, Any]) -> str | None:
        e = self.enrollment
        StaffTask.objects.get_or_create(
            source_key=f"journey:{e.pk}:{e.step}",
            defaults={
                "patient": self.ctx.patient,
                "title": step["title"],
                "queue": step.get("queue", "front-desk"),
                "due_at": self.at + parse_duration(step.get("due", "P1D")),
                "enrollment": e,
                "created_at": self.at,
            },
        )
        _event(e, e.step, "task", "created", at=self.at)
        e.step += 1
        return None

    def _update(self, step: dict[str, Any]) -> str | None:
        e = self.enrollment
        if step["field"] == "tag":
            from careloop.patients.models import PatientTag

            tag = str(step["value"])
            if tag.startswith("-"):
                PatientTag.objects.filter(patient=self.ctx.patient, tag=tag[1:]).delete()
            else:
                PatientTag.objects.get_or_create(
                    patient=self.ctx.patient, tag=tag, defaults={"created_at": self.at}
                )
        _event(e, e.step, "update", f"{step['field']}={step['value']}", at=self.at)
        e.step += 1
        return None

    def _exit(self, step: dict[str, Any]) -> str | None:
        return self._end(EnrollmentStatus.EXITED, str(step.get("reason", "done"))[:32])


def _event(
    enrollment: Enrollment,
    step: int,
    kind: str,
    outcome: str,
    *,
    at: datetime.datetime,
    message: Message | None = None,
) -> None:
    EnrollmentEvent.objects.create(
        enrollment=enrollment, step=step, kind=kind, outcome=outcome[:48], message=message, at=at
    )


# --- sending ------------------------------------------------------------------------------


def channel_order(patient: Patient, channels: list[str]) -> list[str]:
    """The step's channels, the patient's preferred ones first in their order."""
    preference = CommunicationPreference.objects.filter(patient=patient).first()
    preferred = [c for c in (preference.channel_order if preference else []) if c in channels]
    return preferred + [c for c in channels if c not in preferred]


def journey_send(
    *,
    patient: Patient,
    template_key: str,
    channels: list[str],
    purpose: str,
    idempotency_key: str,
    at: datetime.datetime,
    appointment: Appointment | None = None,
    gap: Any = None,
    enrollment: Enrollment | None = None,
) -> Message | None:
    """Send a template on the first channel the patient may be reached on (fallback in
    their preferred order); when none may, the first is stored withheld with its reason.
    None when no channel has the template."""
    from careloop.outreach.links import links_for
    from careloop.outreach.templates import (
        TemplateMissing,
        render_context,
        template_for,
        template_render,
    )

    existing = Message.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    candidates: list[tuple[str, Any, bool]] = []
    for channel in channel_order(patient, channels):
        try:
            template, fallback = template_for(template_key, channel, patient.preferred_language)
        except TemplateMissing:
            continue
        candidates.append((channel, template, fallback))
    if not candidates:
        return None
    chosen = candidates[0]
    for channel, template, fallback in candidates:
        if channel not in (Channel.PORTAL, Channel.PUSH) and not address_for(
            patient=patient, channel=Channel(channel)
        ):
            continue
        decision = may_contact(patient, channel, purpose, template.content_class, at)
        if decision.allowed or decision.retry_at is not None:
            chosen = (channel, template, fallback)
            break
    channel, template, fallback = chosen
    links = links_for(patient=patient, appointment=appointment, purpose=purpose)
    context = render_context(
        patient,
        appointment=appointment,
        gap=gap,
        links=links,
        language=template.language,
    )
    message = message_enqueue(
        patient=patient,
        channel=Channel(channel),
        purpose=Purpose(purpose),
        content_class=ContentClass(template.content_class),
        template_id=template.key,
        template_version=template.version,
        rendered=template_render(template, context),
        idempotency_key=idempotency_key,
        send_at=at,
        about=About(
            enrollment=enrollment,
            step=enrollment.step if enrollment is not None else None,
            appointment=appointment,
            language=template.language,
            language_fallback=fallback,
        ),
    )
    if gap is not None:
        from careloop.caregaps.gaps import care_gap_link_message

        care_gap_link_message(care_gap=gap, message=message)
    return message
