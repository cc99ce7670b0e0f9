"""The journeys careloop ships, on by default and editable like any other.

Each is installed once (`journeys_install_builtin`, after migrations): an admin's edit
is never overwritten, and a journey an admin deleted is not brought back unless asked
(`careloop outreach journeys --install`). Template keys are those of
careloop.outreach.builtin_templates.
"""

from __future__ import annotations

from typing import Any

from careloop.consent.models import Purpose
from careloop.core.clock import now
from careloop.outreach.models import Journey, Trigger

DIABETES = "2.16.840.1.113883.3.464.1003.103.12.1001"
ESSENTIAL_HYPERTENSION = "2.16.840.1.113883.3.464.1003.104.12.1011"
TEXT_FIRST = ["sms", "email"]
REMINDER_CHANNELS = ["sms", "email", "voice"]


def _wait_before(days: int, at_local: str = "10:00", **extra: Any) -> dict[str, Any]:
    offset = f"-P{days}D" if days else "P0D"
    until = {"anchor": "subject", "offset": offset, "at_local": at_local}
    return {"kind": "wait", "until": until, "if_past": "skip_next", **extra}


BUILTIN: list[dict[str, Any]] = [
    {
        "key": "new-lead-welcome",
        "name": "New-lead welcome",
        "description": "Welcome a new lead, then a staff call if no visit is booked in 3 days.",
        "trigger": Trigger.LEAD_CREATED,
        "purpose": Purpose.MARKETING,
        "definition": {
            "steps": [
                {"kind": "send", "template": "lead-welcome", "channels": ["email", "sms"]},
                {"kind": "wait", "for": "P3D"},
                {"kind": "task", "title": "Call the new lead to book a first visit"},
            ],
            "exits": ["appointment_booked", "opted_out"],
        },
    },
    {
        "key": "onboarding",
        "name": "Onboarding",
        "description": "Intake form, consents and insurance card, until onboarding is done.",
        "trigger": Trigger.STAGE_ENTERED,
        "trigger_filter": {"stages": ["onboarding"]},
        "purpose": Purpose.APPOINTMENT,
        "definition": {
            "steps": [
                {"kind": "send", "template": "onboarding-intake", "channels": TEXT_FIRST},
                {"kind": "wait", "for": "P2D"},
                {"kind": "send", "template": "onboarding-consents", "channels": TEXT_FIRST},
                {"kind": "wait", "for": "P2D"},
                {
                    "kind": "send",
                    "template": "onboarding-insurance-card",
                    "channels": TEXT_FIRST,
                },
                {"kind": "wait", "for": "P3D"},
                {"kind": "task", "title": "Help the patient finish onboarding"},
            ],
            "exits": ["onboarding_complete", "opted_out"],
        },
    },
    {
        "key": "pre-visit",
        "name": "Pre-visit reminders",
        "description": (
            "7 and 2 days before with confirm Y/N, pre-registration, and same-day "
            "directions and parking."
        ),
        "trigger": Trigger.APPOINTMENT_BOOKED,
        "purpose": Purpose.APPOINTMENT,
        "definition": {
            "steps": [
                _wait_before(7),
                {"kind": "send", "template": "previsit-7d", "channels": REMINDER_CHANNELS},
                _wait_before(3),
                {
                    "kind": "send",
                    "template": "previsit-preregistration",
                    "channels": TEXT_FIRST,
                },
                _wait_before(2),
                {"kind": "branch", "if": "appointment_confirmed", "then": "same-day"},
                {"kind": "send", "template": "previsit-2d", "channels": REMINDER_CHANNELS},
                _wait_before(0, "07:00", id="same-day"),
                {"kind": "send", "template": "previsit-sameday", "channels": TEXT_FIRST},
            ],
            "exits": ["subject_cancelled", "visit_completed"],
        },
    },
    {
        "key": "post-visit",
        "name": "Post-visit follow-up",
        "description": (
            "Where the visit instructions are, a satisfaction survey after a day, and a "
            "follow-up booking reminder. Copy it per visit type (trigger filter)."
        ),
        "trigger": Trigger.VISIT_COMPLETED,
        "purpose": Purpose.APPOINTMENT,
        "definition": {
            "steps": [
                {"kind": "send", "template": "postvisit-instructions", "channels": TEXT_FIRST},
                {"kind": "wait", "for": "P1D"},
                {
                    "kind": "send",
                    "template": "survey-satisfaction",
                    "channels": TEXT_FIRST,
                    "purpose": Purpose.SURVEY,
                },
                {"kind": "wait", "for": "P6D"},
                {"kind": "branch", "if": "appointment_booked", "then": "end"},
                {"kind": "send", "template": "postvisit-followup", "channels": TEXT_FIRST},
            ],
            "exits": ["opted_out"],
        },
    },
    {
        "key": "no-show-recovery",
        "name": "No-show recovery",
        "description": (
            "A same-day invitation to reschedule (one-click link), again at 7 days, then "
            "a staff call. Stops when the patient books."
        ),
        "trigger": Trigger.NO_SHOW,
        "purpose": Purpose.APPOINTMENT,
        "definition": {
            "steps": [
                {"kind": "send", "template": "noshow-reschedule", "channels": TEXT_FIRST},
                {"kind": "wait", "for": "P7D"},
                {"kind": "send", "template": "noshow-followup-7d", "channels": TEXT_FIRST},
                {"kind": "wait", "for": "P3D"},
                {"kind": "task", "title": "Call the patient to reschedule the missed visit"},
            ],
            "exits": ["appointment_booked"],
        },
    },
    {
        "key": "care-gap-recall",
        "name": "Care-gap recall",
        "description": (
            "Before the due date, at it, 30 days overdue, then a staff task. Exits when "
            "the gap closes. Names the screening only in the portal."
        ),
        "trigger": Trigger.GAP_DUE_SOON,
        "purpose": Purpose.CARE_REMINDER,
        "definition": {
            "steps": [
                {"kind": "branch", "if": "gap_overdue", "then": "overdue"},
                {
                    "kind": "wait",
                    "until": {"anchor": "subject", "offset": "-P30D", "at_local": "10:00"},
                },
                {"kind": "send", "template": "gap-recall-before", "channels": TEXT_FIRST},
                _wait_before(0),
                {"kind": "send", "template": "gap-recall-due", "channels": TEXT_FIRST},
                {
                    "kind": "wait",
                    "until": {"anchor": "subject", "offset": "P30D", "at_local": "10:00"},
                },
                {
                    "id": "overdue",
                    "kind": "send",
                    "template": "gap-recall-overdue",
                    "channels": TEXT_FIRST,
                },
                {"kind": "wait", "for": "P14D"},
                {"kind": "task", "title": "Call about an overdue care gap", "queue": "care"},
            ],
            "exits": ["gap_closed", "opted_out"],
        },
    },
    {
        "key": "chronic-cadence",
        "name": "Chronic-condition check-ins",
        "description": "Diabetes and hypertension: a check-in every quarter for the year.",
        "trigger": Trigger.CONDITION_ACTIVE,
        "trigger_filter": {"value_sets": [DIABETES, ESSENTIAL_HYPERTENSION]},
        "purpose": Purpose.CARE_REMINDER,
        "definition": {
            "steps": [
                step
                for _ in range(4)
                for step in (
                    {"kind": "send", "template": "chronic-checkin", "channels": TEXT_FIRST},
                    {"kind": "wait", "for": "P91D"},
                )
            ][:-1],
            "exits": ["opted_out"],
        },
    },
    {
        "key": "medication-adherence",
        "name": "Medication adherence check-in",
        "description": "Two weeks after a new prescription, and again a month later.",
        "trigger": Trigger.MEDICATION_STARTED,
        "purpose": Purpose.CARE_REMINDER,
        "definition": {
            "steps": [
                {"kind": "wait", "for": "P14D"},
                {"kind": "send", "template": "medication-checkin", "channels": TEXT_FIRST},
                {"kind": "wait", "for": "P30D"},
                {"kind": "send", "template": "medication-checkin", "channels": TEXT_FIRST},
            ],
            "exits": ["opted_out"],
        },
    },
    {
        "key": "reactivation",
        "name": "Reactivation",
        "description": "Patients at retention risk or dormant: two invitations, then a call.",
        "trigger": Trigger.STAGE_ENTERED,
        "trigger_filter": {"stages": ["retention_risk", "dormant"]},
        "purpose": Purpose.CARE_REMINDER,
        "definition": {
            "steps": [
                {"kind": "send", "template": "reactivation", "channels": TEXT_FIRST},
                {"kind": "wait", "for": "P14D"},
                {"kind": "send", "template": "reactivation", "channels": TEXT_FIRST},
                {"kind": "wait", "for": "P14D"},
                {"kind": "task", "title": "Call to invite the patient back"},
            ],
            "exits": ["appointment_booked", "stage_changed", "opted_out"],
        },
    },
]


def journeys_install_builtin(*, keys: list[str] | None = None) -> int:
    """Create the built-in journeys that do not exist yet; how many were made."""
    from careloop.outreach.journeys import journey_save, journey_validate

    made = 0
    for spec in BUILTIN:
        if keys is not None and spec["key"] not in keys:
            continue
        if Journey.objects.filter(key=spec["key"]).exists():
            continue
        errors = journey_validate(spec["definition"])
        if errors:
            raise ValueError(f"built-in journey {spec['key']}: {errors}")
        journey = Journey(
            key=spec["key"],
            name=spec["name"],
            description=spec["description"],
            trigger=spec["trigger"],
            trigger_filter=spec.get("trigger_filter", {}),
            purpose=spec["purpose"],
            definition=spec["definition"],
            built_in=True,
            enabled=True,
            version=1,
            updated_at=now(),
        )
        journey_save(journey)
        made += 1
    return made
