"""Lifecycle stages: every rule in this one module, each with the reason it shows.

`lifecycle_evaluate` derives a patient's stage from their events (visits, bookings,
referrals, conditions, care plans, contacts) as of a moment; the first rule that
matches wins, in this order:

    deceased → transferred → acquisition / onboarding (no visit yet) → referral
    (open outbound) → dormant → retention_risk (behind the expected visit cadence)
    → first_visit → care_plan → chronic → preventive

`lifecycle_recompute` stores the result on the patient, and a change in the stage
history and on the timeline. Call it whenever an event arrives for the patient; time
alone moves patients into retention_risk and dormant, which the daily sweep catches.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Q

from careloop.clinical.models import ClinicalFact, FactKind
from careloop.consent.models import ContactEvent
from careloop.core.clock import now
from careloop.patients.models import LifecycleStage, Patient, StageChange, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.referrals.models import Referral, ReferralDirection, ReferralStatus
from careloop.scheduling.models import Appointment, AppointmentStatus

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


@dataclass(frozen=True)
class Program:
    """A chronic-condition program: which conditions put a patient in it, how often they
    are expected to be seen."""

    name: str
    noun: str  # "diabetic patients"
    cadence_months: int
    snomed: frozenset[str]
    icd10_prefixes: tuple[str, ...]


# The shortest cadence wins when a patient is in several programs.
PROGRAMS = (
    Program("heart failure", "patients with heart failure", 3, frozenset({"84114007"}), ("I50",)),
    Program(
        "diabetes",
        "diabetic patients",
        6,
        frozenset({"44054006", "73211009", "46635009"}),
        ("E10", "E11", "E13"),
    ),
    Program(
        "chronic kidney disease",
        "patients with chronic kidney disease",
        6,
        frozenset({"433144002", "709044004", "431855005", "431856006"}),
        ("N18",),
    ),
    Program("COPD", "patients with COPD", 6, frozenset({"13645005"}), ("J44",)),
    Program(
        "hypertension",
        "patients with hypertension",
        6,
        frozenset({"59621000", "38341003"}),
        ("I10", "I11", "I12", "I13", "I15"),
    ),
    Program(
        "depression",
        "patients in depression care",
        6,
        frozenset({"370143000", "35489007"}),
        ("F32", "F33"),
    ),
    Program("asthma", "patients with asthma", 12, frozenset({"195967001"}), ("J45",)),
)
PREVENTIVE_CADENCE_MONTHS = 12
ACTIVE_CONDITION_STATUSES = ("active", "recurrence", "relapse", "")
OPEN_REFERRAL_STATUSES = (ReferralStatus.SENT, ReferralStatus.SCHEDULED)
VISIT_STATUSES = (AppointmentStatus.FULFILLED, AppointmentStatus.CHECKED_IN)
BOOKED_STATUSES = (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)


@dataclass(frozen=True)
class StageResult:
    stage: LifecycleStage
    reason: str


def _months(months: int) -> datetime.timedelta:
    return datetime.timedelta(days=round(months * 30.44))


def _day(at: datetime.datetime) -> str:
    """A date as the practice's staff read it (their zone, not UTC)."""
    return at.astimezone(zoneinfo.ZoneInfo(settings.PRACTICE_TIME_ZONE)).date().isoformat()


def _visits(
    patient: Patient, as_of: datetime.datetime
) -> tuple[int, datetime.datetime | None, datetime.datetime | None]:
    """How many visits, the first and the last: completed appointments and EHR encounters."""
    appointments = Appointment.objects.filter(
        patient=patient, status__in=VISIT_STATUSES, start__lte=as_of
    ).aggregate(first=Min("start"), last=Max("start"))
    encounters = ClinicalFact.objects.filter(
        patient=patient, kind=FactKind.ENCOUNTER, effective_start__lte=as_of
    ).aggregate(first=Min("effective_start"), last=Max("effective_start"))
    firsts = [d for d in (appointments["first"], encounters["first"]) if d is not None]
    lasts = [d for d in (appointments["last"], encounters["last"]) if d is not None]
    if not lasts:
        return 0, None, None
    # A completed appointment and its EHR encounter are one visit: count distinct days,
    # and only up to two, which is all the rules ask ("is this the first visit?").
    earliest = list(
        Appointment.objects.filter(patient=patient, status__in=VISIT_STATUSES, start__lte=as_of)
        .order_by("start")
        .values_list("start", flat=True)[:2]
    ) + list(
        ClinicalFact.objects.filter(
            patient=patient, kind=FactKind.ENCOUNTER, effective_start__lte=as_of
        )
        .order_by("effective_start")
        .values_list("effective_start", flat=True)[:2]
    )
    count = min(2, len({moment.date() for moment in earliest if moment is not None}))
    return count, min(firsts), max(lasts)


def _programs(patient: Patient, as_of: datetime.datetime) -> list[Program]:
    conditions = ClinicalFact.objects.filter(
        patient=patient,
        kind=FactKind.CONDITION,
        status__in=ACTIVE_CONDITION_STATUSES,
        effective_start__lte=as_of,
    ).filter(Q(effective_end__isnull=True) | Q(effective_end__gt=as_of))
    codes = set(conditions.values_list("system", "code"))
    found = []
    for program in PROGRAMS:
        for system, code in codes:
            if (system == SNOMED and code in program.snomed) or (
                system == ICD10CM and code.startswith(program.icd10_prefixes)
            ):
                found.append(program)
                break
    return found


def lifecycle_evaluate(*, patient: Patient, as_of: datetime.datetime | None = None) -> StageResult:
    """The stage the rules give this patient at `as_of`, with the reason a person reads."""
    as_of = as_of or now()
    if patient.deceased_on is not None:
        return StageResult(LifecycleStage.DECEASED, f"deceased on {patient.deceased_on}")
    if patient.transferred_on is not None:
        return StageResult(
            LifecycleStage.TRANSFERRED, f"care transferred on {patient.transferred_on}"
        )
    count, first_visit, last_visit = _visits(patient, as_of)
    if last_visit is None or first_visit is None:
        booked = (
            Appointment.objects.filter(patient=patient, status__in=BOOKED_STATUSES, start__gt=as_of)
            .order_by("start")
            .values_list("start", flat=True)
            .first()
        )
        if booked is not None:
            return StageResult(
                LifecycleStage.ONBOARDING,
                f"first appointment booked for {_day(booked)}; "
                "intake, consent and insurance pending",
            )
        return StageResult(LifecycleStage.ACQUISITION, "no visit yet")
    referral = (
        Referral.objects.filter(
            patient=patient,
            direction=ReferralDirection.OUTBOUND,
            status__in=OPEN_REFERRAL_STATUSES,
            created_at__lte=as_of,
        )
        .order_by("created_at")
        .values_list("specialty", "created_at")
        .first()
    )
    if referral is not None:
        return StageResult(
            LifecycleStage.REFERRAL,
            f"open outbound referral to {referral[0]} since {_day(referral[1])}",
        )
    programs = _programs(patient, as_of)
    last_contact = ContactEvent.objects.filter(patient=patient, at__lte=as_of).aggregate(
        last=Max("at")
    )["last"]
    latest_touch = max(d for d in (last_visit, last_contact) if d is not None)
    dormant_after = _months(settings.LIFECYCLE_DORMANT_MONTHS)
    if as_of - latest_touch > dormant_after:
        return StageResult(
            LifecycleStage.DORMANT,
            f"no visit since {_day(last_visit)} and no contact for over "
            f"{settings.LIFECYCLE_DORMANT_MONTHS} months",
        )
    grace = datetime.timedelta(days=settings.LIFECYCLE_GRACE_DAYS)
    if programs:
        strictest = min(programs, key=lambda p: p.cadence_months)
        cadence, expected = strictest.cadence_months, f"{strictest.noun} are expected"
    else:
        cadence, expected = PREVENTIVE_CADENCE_MONTHS, "patients are expected"
    if as_of - last_visit > _months(cadence) + grace:
        return StageResult(
            LifecycleStage.RETENTION_RISK,
            f"no visit since {_day(last_visit)}; {expected} every {cadence} months",
        )
    if count == 1 and as_of - first_visit <= datetime.timedelta(
        days=settings.LIFECYCLE_FIRST_VISIT_DAYS
    ):
        return StageResult(LifecycleStage.FIRST_VISIT, f"first visit on {_day(first_visit)}")
    care_plan = (
        ClinicalFact.objects.filter(
            patient=patient, kind=FactKind.CARE_PLAN, status="active", effective_start__lte=as_of
        )
        .filter(Q(effective_end__isnull=True) | Q(effective_end__gt=as_of))
        .values_list("display", flat=True)
        .first()
    )
    if care_plan is not None:
        return StageResult(LifecycleStage.CARE_PLAN, f"active care plan: {care_plan}"[:200])
    if programs:
        names = ", ".join(p.name for p in programs)
        return StageResult(
            LifecycleStage.CHRONIC,
            f"in chronic care for {names}; seen every {cadence} months, last {_day(last_visit)}",
        )
    due = _day(last_visit + _months(PREVENTIVE_CADENCE_MONTHS))
    return StageResult(
        LifecycleStage.PREVENTIVE,
        f"in routine preventive care; last visit {_day(last_visit)}, next due by {due}",
    )


@transaction.atomic
def lifecycle_recompute(*, patient: Patient, as_of: datetime.datetime | None = None) -> StageResult:
    """Store the stage the rules give now; a change goes to the history and the timeline."""
    result = lifecycle_evaluate(patient=patient, as_of=as_of)
    patient.lifecycle_evaluated_at = now()
    if (patient.lifecycle_stage, patient.lifecycle_reason) == (result.stage, result.reason):
        patient.save(update_fields=["lifecycle_evaluated_at"])
        return result
    at = as_of or now()
    previous = patient.lifecycle_stage
    patient.lifecycle_stage = result.stage
    patient.lifecycle_reason = result.reason
    patient.updated_at = now()
    patient.save(
        update_fields=[
            "lifecycle_stage",
            "lifecycle_reason",
            "lifecycle_evaluated_at",
            "updated_at",
        ]
    )
    if previous != result.stage:
        StageChange.objects.create(
            patient=patient, at=at, from_stage=previous, to_stage=result.stage, reason=result.reason
        )
        timeline_add(
            patient=patient,
            kind=TimelineKind.STAGE,
            summary=f"Stage: {LifecycleStage(result.stage).label} ({result.reason})",
            at=at,
            ref_type="stage_change",
        )
    return result


TERMINAL = (LifecycleStage.DECEASED, LifecycleStage.TRANSFERRED)


def lifecycle_sweep(*, batch: int, stale_after: datetime.timedelta) -> int:
    """Re-run the rules for the patients evaluated longest ago; how many were evaluated.

    Time alone moves patients into retention_risk and dormant: this catches them. Each
    patient is its own short transaction, so a long sweep never holds locks for long.
    """
    cutoff = now() - stale_after
    due = list(
        Patient.objects.exclude(lifecycle_stage__in=TERMINAL)
        .filter(merged_into__isnull=True)
        .filter(Q(lifecycle_evaluated_at__isnull=True) | Q(lifecycle_evaluated_at__lt=cutoff))
        .order_by("lifecycle_evaluated_at", "pk")[:batch]
    )
    for patient in due:
        lifecycle_recompute(patient=patient)
    return len(due)
