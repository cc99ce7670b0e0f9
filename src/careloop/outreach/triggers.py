"""Which events enrol whom: one set-based scan per trigger.

Events are found in the rows the rest of careloop already writes (appointments, care
gaps, stage changes, referrals, clinical facts), not announced by every writer: an
appointment booked by staff, received over SIU or imported from a Bulk Data export
enrols the same way. A scan reads events of the last JOURNEY_TRIGGER_LOOKBACK_DAYS (an
import of last year's visits, or a journey switched on today, does not message people
about the past) and enrols each (journey, patient, event) once: the enrollment's unique
key makes a second scan, or a second worker, a no-op.
"""

from __future__ import annotations

import datetime
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db.models import Q

from careloop.clinical.models import ClinicalFact, FactKind
from careloop.core.clock import now
from careloop.outreach.journeys import journeys_enroll_rows
from careloop.outreach.models import Enrollment, Journey, Trigger
from careloop.patients.models import LifecycleStage, Patient, StageChange
from careloop.referrals.models import Referral, ReferralDirection
from careloop.scheduling.models import Appointment, AppointmentStatus

Row = tuple[uuid.UUID, str, str, str]  # patient id, trigger key, subject type, subject id
Scan = Callable[[Journey, datetime.datetime, datetime.datetime], Iterable[Row]]


def _visit_types(journey: Journey) -> Q:
    types = journey.trigger_filter.get("visit_types") or []
    return Q(appointment_type_id__in=types) if types else Q()


def _appointments(event: str, statuses: Iterable[str]) -> Scan:
    def scan(journey: Journey, at: datetime.datetime, since: datetime.datetime) -> Iterable[Row]:
        rows = Appointment.objects.filter(_visit_types(journey), status__in=list(statuses))
        if event == "booked":
            # Booked lately, still ahead.
            rows = rows.filter(created_at__gte=since, start__gt=at)
        else:
            rows = rows.filter(start__gte=since, start__lte=at)
        for pk, patient_id in rows.values_list("pk", "patient_id").iterator(chunk_size=2000):
            yield patient_id, f"appointment:{pk}:{event}", "appointment", str(pk)

    return scan


def _gaps(event: str) -> Scan:
    def scan(journey: Journey, at: datetime.datetime, since: datetime.datetime) -> Iterable[Row]:
        from careloop.caregaps.evaluate import DEFAULT_HORIZON_DAYS
        from careloop.caregaps.models import CareGap, GapState

        today = at.date()
        horizon = journey.trigger_filter.get("horizon_days", DEFAULT_HORIZON_DAYS)
        rows = CareGap.objects.filter(state=GapState.OPEN)
        measures = journey.trigger_filter.get("measures") or []
        if measures:
            rows = rows.filter(measure__in=measures)
        if event == "due_soon":
            # Due within the horizon, or already past due: the journey's waits place
            # each message before, at and after the due date.
            rows = rows.filter(
                Q(due_date__lte=today + datetime.timedelta(days=int(horizon)))
                | Q(due_date__isnull=True)
            )
        else:
            rows = rows.filter(Q(due_date__lte=today) | Q(due_date__isnull=True))
        for pk, patient_id in rows.values_list("pk", "patient_id").iterator(chunk_size=2000):
            yield patient_id, f"caregap:{pk}:{event}", "caregap", str(pk)

    return scan


def _stage(stages: Iterable[str] | None = None) -> Scan:
    def scan(journey: Journey, at: datetime.datetime, since: datetime.datetime) -> Iterable[Row]:
        wanted = list(stages or journey.trigger_filter.get("stages") or [])
        rows = StageChange.objects.filter(at__gte=since, at__lte=at)
        if wanted:
            rows = rows.filter(to_stage__in=wanted)
        for pk, patient_id, stage in rows.values_list("pk", "patient_id", "to_stage"):
            yield patient_id, f"stage:{pk}:{stage}", "", ""

    return scan


def _registered(journey: Journey, at: datetime.datetime, since: datetime.datetime) -> Iterable[Row]:
    rows = Patient.objects.filter(created_at__gte=since, created_at__lte=at).exclude(
        lifecycle_stage=LifecycleStage.DECEASED
    )
    for pk in rows.values_list("pk", flat=True):
        yield pk, f"patient:{pk}:registered", "", ""


def _referrals(direction: str) -> Scan:
    def scan(journey: Journey, at: datetime.datetime, since: datetime.datetime) -> Iterable[Row]:
        rows = Referral.objects.filter(direction=direction, created_at__gte=since)
        for pk, patient_id in rows.values_list("pk", "patient_id"):
            yield patient_id, f"referral:{pk}", "referral", str(pk)

    return scan


def _coded_facts(journey: Journey, kind: str) -> Q:
    """Facts of `kind` whose code is in the journey's value sets (trigger_filter); every
    fact of the kind when it names none."""
    from careloop.caregaps.terminology import valueset_members

    oids = journey.trigger_filter.get("value_sets") or []
    if not oids:
        return Q(kind=kind)
    members = valueset_members(oids=oids)
    coded = Q()
    for system, codes in members.items():
        coded |= Q(system=system, code__in=codes)
    return Q(kind=kind) & coded if coded else Q(pk__in=[])


def _conditions(journey: Journey, at: datetime.datetime, since: datetime.datetime) -> Iterable[Row]:
    """Patients with the condition on their problem list: one enrolment a year (the
    journey is the year's check-in cadence)."""
    rows = (
        ClinicalFact.objects.filter(_coded_facts(journey, FactKind.CONDITION))
        .filter(patient__isnull=False)
        .exclude(status__in=("resolved", "inactive", "entered-in-error"))
        .values_list("patient_id", flat=True)
        .distinct()
    )
    for patient_id in rows.iterator(chunk_size=2000):
        yield patient_id, f"condition:{journey.key}:{patient_id}:{at.year}", "", ""


def _medications(
    journey: Journey, at: datetime.datetime, since: datetime.datetime
) -> Iterable[Row]:
    rows = ClinicalFact.objects.filter(
        _coded_facts(journey, FactKind.MEDICATION),
        patient__isnull=False,
        effective_start__gte=since,
        effective_start__lte=at,
    )
    for pk, patient_id in rows.values_list("pk", "patient_id"):
        yield patient_id, f"medication:{pk}", "", ""


SCANS: dict[str, Scan] = {
    Trigger.LEAD_CREATED: _stage([LifecycleStage.ACQUISITION]),
    Trigger.PATIENT_REGISTERED: _registered,
    Trigger.APPOINTMENT_BOOKED: _appointments(
        "booked", (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED)
    ),
    Trigger.VISIT_COMPLETED: _appointments("completed", (AppointmentStatus.FULFILLED,)),
    Trigger.NO_SHOW: _appointments("noshow", (AppointmentStatus.NO_SHOW,)),
    Trigger.GAP_DUE_SOON: _gaps("due_soon"),
    Trigger.GAP_OVERDUE: _gaps("overdue"),
    Trigger.REFERRAL_SENT: _referrals(ReferralDirection.OUTBOUND),
    Trigger.REFERRAL_RECEIVED: _referrals(ReferralDirection.INBOUND),
    Trigger.STAGE_ENTERED: _stage(),
    Trigger.CONDITION_ACTIVE: _conditions,
    Trigger.MEDICATION_STARTED: _medications,
}


def trigger_rows(journey: Journey, *, at: datetime.datetime | None = None) -> list[Row]:
    """The events that would enrol patients in `journey` now, new or not."""
    scan = SCANS.get(journey.trigger)
    if scan is None:  # manual enrolment only
        return []
    at = at or now()
    since = at - datetime.timedelta(days=settings.JOURNEY_TRIGGER_LOOKBACK_DAYS)
    return list(scan(journey, at, since))


def journeys_scan(*, at: datetime.datetime | None = None) -> Counter[str]:
    """Enrol the patients of every enabled journey's new events; new enrollments counted
    per journey."""
    at = at or now()
    enrolled: Counter[str] = Counter()
    for journey in Journey.objects.filter(enabled=True):
        rows = trigger_rows(journey, at=at)
        if not rows:
            continue
        known = set(
            Enrollment.objects.filter(journey=journey).values_list("trigger_key", flat=True)
        )
        fresh = [row for row in rows if row[1] not in known]
        count = journeys_enroll_rows(journey, fresh, at=at)
        if count:
            enrolled[journey.key] += count
    return enrolled


def journey_enroll_many(
    journey: Journey, *, patient_ids: Iterable[uuid.UUID], batch: str, actor: Any
) -> int:
    """Manual enrolment from a worklist or a segment (`batch` names the action, so the
    same list enrolled twice in one action enrols once)."""
    from careloop.security.audit import audit_record
    from careloop.security.permissions import Op, Resource, require

    ids = list(dict.fromkeys(patient_ids))
    for patient_id in ids:
        require(actor, Op.WRITE, Resource.MESSAGES, patient_id=patient_id)
    count = journeys_enroll_rows(
        journey, [(pid, f"manual:{batch}:{pid}", "", "") for pid in ids], at=now()
    )
    audit_record(
        action="journey.enroll",
        actor=actor,
        resource_type="journey",
        resource_id=str(journey.pk),
        fields=("patients",),
    )
    return count
