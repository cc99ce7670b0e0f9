"""What the patient's timeline says about a message: coded values only, never the body."""

from __future__ import annotations

from careloop.consent.models import Channel, Purpose
from careloop.outreach.models import Message, MessageStatus
from careloop.patients.models import TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.models import User


def message_timeline(message: Message, *, actor: User | None = None) -> None:
    """One timeline entry for a message reaching a state worth showing."""
    what = f"{Channel(message.channel).label} {Purpose(message.purpose).label.lower()} message"
    status = MessageStatus(message.status)
    summary = f"{what} {status.label.lower()}"
    if status == MessageStatus.WITHHELD:
        summary += f" ({message.send_reason or message.scheduled_reason})"
    timeline_add(
        patient=message.patient,
        kind=TimelineKind.MESSAGE_SENT,
        summary=summary,
        actor=actor,
        ref_type="message",
        ref_id=str(message.id),
    )
