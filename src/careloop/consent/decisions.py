"""`may_contact`: the one decision every message passes, whatever sends it.

The checks run in a fixed order, and the first that says no gives the reason, so a
withheld message always names the rule a person would have to change:

1. deceased                    the patient died
2. do_not_contact              staff or the patient set "do not contact"
3. restricted_condition        the content is about a restricted topic (behavioural
                               health, Part 2, HIV, reproductive health) and the channel
                               is not the portal, or the patient barred outreach about it
4. sensitive_content_channel   sensitive content on any channel but the secure portal
5. no_verified_address         no verified address that can carry the channel
6. opted_out                   the patient revoked the channel or opted out of the purpose
7. no_consent                  a consent the channel or purpose needs was never given
8. quiet_hours                 inside the patient's local quiet hours (SMS, voice, push)
9. frequency_cap               the channel's cap for non-urgent purposes is reached
"""

from __future__ import annotations

import datetime
import enum
import zoneinfo
from dataclasses import dataclass

from django.conf import settings

from careloop.consent.ledger import consent_current
from careloop.consent.models import (
    Channel,
    ChannelOptIn,
    CommunicationPreference,
    ConsentKind,
    ConsentStatus,
    ContactEvent,
    ContentClass,
    Purpose,
    RestrictedTopic,
    TopicRestriction,
)
from careloop.patients.models import ContactPoint, ContactSystem, LifecycleStage, Patient


class Reason(enum.StrEnum):
    ALLOWED = "allowed"
    DECEASED = "deceased"
    DO_NOT_CONTACT = "do_not_contact"
    RESTRICTED_CONDITION = "restricted_condition"
    SENSITIVE_CONTENT_CHANNEL = "sensitive_content_channel"
    NO_VERIFIED_ADDRESS = "no_verified_address"
    OPTED_OUT = "opted_out"
    NO_CONSENT = "no_consent"
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason
    detail: str = ""
    # For a "not now" (quiet hours, cap): the earliest moment the answer may change.
    retry_at: datetime.datetime | None = None

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Decision(True, Reason.ALLOWED)

# Channels that interrupt a person: quiet hours apply to them.
INTRUSIVE = {Channel.SMS, Channel.VOICE, Channel.PUSH}
# The consent each channel needs before any message (TCPA for texts and calls).
CHANNEL_CONSENT = {
    Channel.SMS: ConsentKind.SMS,
    Channel.VOICE: ConsentKind.VOICE,
    Channel.PUSH: ConsentKind.PUSH,
}
# Purposes a patient hears about unless they opt out; others need an opt-in.
OPT_OUT_PURPOSES = {Purpose.APPOINTMENT, Purpose.CARE_REMINDER, Purpose.BILLING, Purpose.SURVEY}
# Purposes exempt from frequency caps: a patient must hear about their appointment.
URGENT_PURPOSES = {Purpose.APPOINTMENT}
ADDRESS_FLAG = {Channel.SMS: "can_sms", Channel.VOICE: "can_voice", Channel.EMAIL: "can_email"}


def _deny(reason: Reason, detail: str = "", retry_at: datetime.datetime | None = None) -> Decision:
    return Decision(False, reason, detail, retry_at)


def _quiet_window(
    preference: CommunicationPreference | None,
) -> tuple[datetime.time, datetime.time]:
    if preference and preference.quiet_start and preference.quiet_end:
        return preference.quiet_start, preference.quiet_end
    start, end = settings.CONTACT_QUIET_HOURS
    return datetime.time.fromisoformat(start), datetime.time.fromisoformat(end)


def quiet_until(
    *, at: datetime.datetime, zone: str, start: datetime.time, end: datetime.time
) -> datetime.datetime | None:
    """If `at` is inside the local quiet window, the aware moment it ends; else None.

    The window may cross midnight (21:00-08:00). Local times are read on the wall
    clock of the patient's zone, so DST changes move the window with the clock.
    """
    tz = zoneinfo.ZoneInfo(zone)
    local = at.astimezone(tz)
    clock = local.time()
    crosses_midnight = start > end
    inside = (clock >= start or clock < end) if crosses_midnight else (start <= clock < end)
    if not inside:
        return None
    day = local.date()
    if clock >= end and crosses_midnight:
        day += datetime.timedelta(days=1)
    # fold=0 and a normalising round trip: an end time in a DST gap moves forward.
    wall = datetime.datetime.combine(day, end, tzinfo=tz)
    return wall.astimezone(datetime.UTC).astimezone(tz)


def _cap_reached(
    *, patient: Patient, channel: Channel, at: datetime.datetime
) -> tuple[str, datetime.datetime] | None:
    caps: dict[str, list[tuple[int, int]]] = settings.CONTACT_FREQUENCY_CAPS
    for limit, days in caps.get(channel, []):
        since = at - datetime.timedelta(days=days)
        recent = list(
            ContactEvent.objects.filter(patient=patient, channel=channel, at__gt=since, at__lte=at)
            .exclude(purpose__in=URGENT_PURPOSES)
            .order_by("at")
            .values_list("at", flat=True)[:limit]
        )
        if len(recent) >= limit:
            return f"{limit} per {days} day(s)", recent[0] + datetime.timedelta(days=days)
    return None


def may_contact(
    patient: Patient,
    channel: Channel | str,
    purpose: Purpose | str,
    content_class: ContentClass | str,
    at: datetime.datetime,
    *,
    topic: RestrictedTopic | str | None = None,
) -> Decision:
    """May careloop send this patient this kind of message on this channel at `at`?"""
    channel, purpose, content_class = (
        Channel(channel),
        Purpose(purpose),
        ContentClass(content_class),
    )
    if patient.deceased_on is not None or patient.lifecycle_stage == LifecycleStage.DECEASED:
        return _deny(Reason.DECEASED)
    preference = CommunicationPreference.objects.filter(patient=patient).first()
    if preference is not None and preference.do_not_contact:
        return _deny(Reason.DO_NOT_CONTACT)
    if topic is not None:
        topic = RestrictedTopic(topic)
        if TopicRestriction.objects.filter(patient=patient, topic=topic).exists():
            return _deny(Reason.RESTRICTED_CONDITION, f"patient barred outreach about {topic}")
        if channel != Channel.PORTAL:
            return _deny(Reason.RESTRICTED_CONDITION, f"{topic} content stays in the portal")
    if content_class == ContentClass.SENSITIVE and channel != Channel.PORTAL:
        return _deny(Reason.SENSITIVE_CONTENT_CHANNEL)
    if channel in ADDRESS_FLAG:
        system = ContactSystem.EMAIL if channel == Channel.EMAIL else ContactSystem.PHONE
        carries = ContactPoint.objects.filter(
            patient=patient, system=system, verified=True, **{ADDRESS_FLAG[channel]: True}
        )
        if not carries.exists():
            return _deny(Reason.NO_VERIFIED_ADDRESS)
    elif channel == Channel.PUSH:
        # Push subscriptions arrive with the portal; until a patient has one, no push.
        return _deny(Reason.NO_VERIFIED_ADDRESS, "no push subscription")
    denial = _consent_denial(patient=patient, channel=channel, purpose=purpose, at=at)
    if denial is not None:
        return denial
    if channel in INTRUSIVE:
        start, end = _quiet_window(preference)
        until = quiet_until(at=at, zone=patient.time_zone, start=start, end=end)
        if until is not None:
            return _deny(Reason.QUIET_HOURS, f"quiet {start:%H:%M}-{end:%H:%M} local", until)
    if purpose not in URGENT_PURPOSES:
        reached = _cap_reached(patient=patient, channel=channel, at=at)
        if reached is not None:
            return _deny(Reason.FREQUENCY_CAP, reached[0], reached[1])
    return ALLOWED


def _consent_denial(
    *, patient: Patient, channel: Channel, purpose: Purpose, at: datetime.datetime
) -> Decision | None:
    needed = CHANNEL_CONSENT.get(channel)
    if needed is not None:
        status = consent_current(patient=patient, kind=needed, at=at)
        if status == ConsentStatus.REVOKED:
            return _deny(Reason.OPTED_OUT, f"{channel} consent revoked")
        if status != ConsentStatus.GRANTED:
            return _deny(Reason.NO_CONSENT, f"no {channel} consent on file")
    opt_in = (
        ChannelOptIn.objects.filter(patient=patient, channel=channel, purpose=purpose)
        .values_list("opted_in", flat=True)
        .first()
    )
    if opt_in is False:
        return _deny(Reason.OPTED_OUT, f"opted out of {purpose} by {channel}")
    if purpose == Purpose.MARKETING:
        status = consent_current(patient=patient, kind=ConsentKind.MARKETING, at=at)
        if status == ConsentStatus.REVOKED:
            return _deny(Reason.OPTED_OUT, "marketing consent revoked")
        if status != ConsentStatus.GRANTED or opt_in is not True:
            return _deny(Reason.NO_CONSENT, "marketing needs an opt-in")
    elif purpose not in OPT_OUT_PURPOSES and opt_in is not True:
        return _deny(Reason.NO_CONSENT, f"{purpose} needs an opt-in")
    return None
