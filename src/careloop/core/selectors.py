"""Practice-wide read paths for the staff home page."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Count, Q

from careloop.core.practice import day_start
from careloop.leads.models import Lead
from careloop.patients.models import LifecycleStage, Patient
from careloop.referrals.models import Referral, ReferralDirection, ReferralStatus
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.permissions import Actor, Op, Resource, require

# Stages of a patient the practice no longer looks after.
INACTIVE_STAGES = frozenset(
    {LifecycleStage.DORMANT, LifecycleStage.TRANSFERRED, LifecycleStage.DECEASED}
)
# An outbound referral is open until the loop closes (the consult report came back)
# or it is cancelled: "completed" means the visit happened, not that we heard back.
OPEN_REFERRAL_STATUSES = (ReferralStatus.SENT, ReferralStatus.SCHEDULED, ReferralStatus.COMPLETED)
# Appointments that still happen, or happened; cancelled ones count nowhere.
SCHEDULED_STATUSES = tuple(s for s in AppointmentStatus if s != AppointmentStatus.CANCELLED)
# A visit whose outcome is known: the patient came, or did not.
ATTENDED_STATUSES = (AppointmentStatus.CHECKED_IN, AppointmentStatus.FULFILLED)
NO_SHOW_WINDOW_DAYS = 90


@dataclass(frozen=True)
class StageCount:
    stage: str
    label: str
    count: int


@dataclass(frozen=True)
class PracticeHeadline:
    today: datetime.date
    active_patients: int
    total_patients: int
    by_stage: list[StageCount]
    appointments_today: int
    appointments_this_week: int
    week_start: datetime.date
    no_shows: int
    no_show_denominator: int
    open_outbound_referrals: int
    new_leads_this_month: int

    @property
    def no_show_rate(self) -> float | None:
        """Share of visits with a known outcome that were no-shows; None with no visits."""
        if not self.no_show_denominator:
            return None
        return self.no_shows / self.no_show_denominator


def practice_headline(*, actor: Actor, today: datetime.date) -> PracticeHeadline:
    """The home page's counts, `today` being the practice's date; four aggregate queries.

    The week runs Monday to Sunday in the practice's zone. The no-show rate is no-shows
    over visits with a known outcome (checked in, completed, no-show) that started in
    the 90 days before today or today.
    """
    require(actor, Op.READ, Resource.AGGREGATES)
    stage_rows = Patient.objects.order_by().values("lifecycle_stage").annotate(n=Count("id"))
    stage_counts = {row["lifecycle_stage"]: row["n"] for row in stage_rows}
    by_stage = [
        StageCount(stage=stage.value, label=stage.label, count=stage_counts.get(stage.value, 0))
        for stage in LifecycleStage
    ]
    active = sum(c.count for c in by_stage if c.stage not in INACTIVE_STAGES)

    week_start = today - datetime.timedelta(days=today.weekday())
    week_from, week_to = day_start(week_start), day_start(week_start + datetime.timedelta(days=7))
    today_from, today_to = day_start(today), day_start(today + datetime.timedelta(days=1))
    window_from = day_start(today - datetime.timedelta(days=NO_SHOW_WINDOW_DAYS))
    # One pass over the appointments of the union of the three windows; the status filter
    # lets the (status, start) index serve the range.
    appointments = Appointment.objects.filter(
        status__in=SCHEDULED_STATUSES,
        start__gte=min(week_from, window_from),
        start__lt=max(week_to, today_to),
    ).aggregate(
        today=Count("id", filter=Q(start__gte=today_from, start__lt=today_to)),
        week=Count("id", filter=Q(start__gte=week_from, start__lt=week_to)),
        no_shows=Count(
            "id",
            filter=Q(status=AppointmentStatus.NO_SHOW, start__gte=window_from, start__lt=today_to),
        ),
        attended=Count(
            "id", filter=Q(status__in=ATTENDED_STATUSES, start__gte=window_from, start__lt=today_to)
        ),
    )
    open_referrals = Referral.objects.filter(
        direction=ReferralDirection.OUTBOUND, status__in=OPEN_REFERRAL_STATUSES
    ).count()
    new_leads = Lead.objects.filter(created_at__gte=day_start(today.replace(day=1))).count()
    return PracticeHeadline(
        today=today,
        active_patients=active,
        total_patients=sum(stage_counts.values()),
        by_stage=by_stage,
        appointments_today=appointments["today"],
        appointments_this_week=appointments["week"],
        week_start=week_start,
        no_shows=appointments["no_shows"],
        no_show_denominator=appointments["no_shows"] + appointments["attended"],
        open_outbound_referrals=open_referrals,
        new_leads_this_month=new_leads,
    )
