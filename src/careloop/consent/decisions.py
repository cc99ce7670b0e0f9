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

The rules read a patient's `ContactFacts` and nothing else, and `decide` runs them.
`may_contact` loads the facts of one patient lazily (a rule that is never reached
costs no query); careloop.outreach.campaign loads them for a whole population in a
few set-based statements and runs the very same `decide`, so the two cannot disagree.
"""

from __future__ import annotations

import datetime
import enum
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from django.conf import settings
from django.db.models import Count, Min, Q

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
from careloop.portal.selectors import push_subscribed


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


@dataclass(frozen=True, slots=True)
class Ask:
    """The message being decided: the same for every patient of a campaign."""

    channel: Channel
    purpose: Purpose
    content_class: ContentClass
    at: datetime.datetime
    topic: RestrictedTopic | None = None

    @classmethod
    def of(
        cls,
        channel: Channel | str,
        purpose: Purpose | str,
        content_class: ContentClass | str,
        at: datetime.datetime,
        topic: RestrictedTopic | str | None = None,
    ) -> Ask:
        return cls(
            Channel(channel),
            Purpose(purpose),
            ContentClass(content_class),
            at,
            RestrictedTopic(topic) if topic is not None else None,
        )

    @property
    def consent_kind(self) -> ConsentKind | None:
        """The ledger consent the channel needs (None: the channel needs none)."""
        return CHANNEL_CONSENT.get(self.channel)

    def caps(self) -> list[tuple[int, int]]:
        """The channel's frequency caps, (at most N, in D days); none for urgent purposes."""
        if self.purpose in URGENT_PURPOSES:
            return []
        caps: dict[str, list[tuple[int, int]]] = settings.CONTACT_FREQUENCY_CAPS
        return list(caps.get(self.channel, []))


class ContactFacts(Protocol):
    """What the rules know of one patient, for one `Ask`.

    `topic_barred`, `has_address`, `channel_consent`, `opt_in` and `marketing_consent`
    are about the ask's topic, channel and purpose; `recent_contacts` holds, for each
    of `Ask.caps()` in order, the non-urgent contacts on the channel in the window
    (at - days, at]: how many, and the earliest.
    """

    @property
    def deceased(self) -> bool: ...
    @property
    def do_not_contact(self) -> bool: ...
    @property
    def topic_barred(self) -> bool: ...
    @property
    def has_address(self) -> bool: ...
    @property
    def channel_consent(self) -> ConsentStatus | None: ...
    @property
    def opt_in(self) -> bool | None: ...
    @property
    def marketing_consent(self) -> ConsentStatus | None: ...
    @property
    def quiet_window(self) -> tuple[datetime.time, datetime.time] | None: ...
    @property
    def time_zone(self) -> str: ...
    @property
    def recent_contacts(self) -> tuple[tuple[int, datetime.datetime | None], ...]: ...


def own_quiet_window(
    quiet_start: datetime.time | None, quiet_end: datetime.time | None
) -> tuple[datetime.time, datetime.time] | None:
    """The patient's own quiet hours; a half-set window is none (the practice's hold)."""
    if quiet_start and quiet_end:
        return quiet_start, quiet_end
    return None


def _practice_quiet_window() -> tuple[datetime.time, datetime.time]:
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


# --- the rules, in order: the first that says no gives the reason ----------------------

Rule = Callable[[ContactFacts, Ask], Decision | None]


def _deceased(facts: ContactFacts, ask: Ask) -> Decision | None:
    return _deny(Reason.DECEASED) if facts.deceased else None


def _do_not_contact(facts: ContactFacts, ask: Ask) -> Decision | None:
    return _deny(Reason.DO_NOT_CONTACT) if facts.do_not_contact else None


def _restricted_topic(facts: ContactFacts, ask: Ask) -> Decision | None:
    if ask.topic is None:
        return None
    if facts.topic_barred:
        return _deny(Reason.RESTRICTED_CONDITION, f"patient barred outreach about {ask.topic}")
    if ask.channel != Channel.PORTAL:
        return _deny(Reason.RESTRICTED_CONDITION, f"{ask.topic} content stays in the portal")
    return None


def _sensitive_content(facts: ContactFacts, ask: Ask) -> Decision | None:
    if ask.content_class == ContentClass.SENSITIVE and ask.channel != Channel.PORTAL:
        return _deny(Reason.SENSITIVE_CONTENT_CHANNEL)
    return None


def _address(facts: ContactFacts, ask: Ask) -> Decision | None:
    if ask.channel in ADDRESS_FLAG:
        return None if facts.has_address else _deny(Reason.NO_VERIFIED_ADDRESS)
    if ask.channel == Channel.PUSH:
        # A push address is a live browser subscription (careloop.portal).
        return (
            None if facts.has_address else _deny(Reason.NO_VERIFIED_ADDRESS, "no push subscription")
        )
    return None


def _consent(facts: ContactFacts, ask: Ask) -> Decision | None:
    channel, purpose = ask.channel, ask.purpose
    if ask.consent_kind is not None:
        status = facts.channel_consent
        if status == ConsentStatus.REVOKED:
            return _deny(Reason.OPTED_OUT, f"{channel} consent revoked")
        if status != ConsentStatus.GRANTED:
            return _deny(Reason.NO_CONSENT, f"no {channel} consent on file")
    opt_in = facts.opt_in
    if opt_in is False:
        return _deny(Reason.OPTED_OUT, f"opted out of {purpose} by {channel}")
    if purpose == Purpose.MARKETING:
        status = facts.marketing_consent
        if status == ConsentStatus.REVOKED:
            return _deny(Reason.OPTED_OUT, "marketing consent revoked")
        if status != ConsentStatus.GRANTED or opt_in is not True:
            return _deny(Reason.NO_CONSENT, "marketing needs an opt-in")
    elif purpose not in OPT_OUT_PURPOSES and opt_in is not True:
        return _deny(Reason.NO_CONSENT, f"{purpose} needs an opt-in")
    return None


def _quiet_hours(facts: ContactFacts, ask: Ask) -> Decision | None:
    if ask.channel not in INTRUSIVE:
        return None
    start, end = facts.quiet_window or _practice_quiet_window()
    until = quiet_until(at=ask.at, zone=facts.time_zone, start=start, end=end)
    if until is None:
        return None
    return _deny(Reason.QUIET_HOURS, f"quiet {start:%H:%M}-{end:%H:%M} local", until)


def _frequency_cap(facts: ContactFacts, ask: Ask) -> Decision | None:
    caps = ask.caps()
    if not caps:
        return None
    for (limit, days), (count, earliest) in zip(caps, facts.recent_contacts, strict=True):
        if count >= limit and earliest is not None:
            return _deny(
                Reason.FREQUENCY_CAP,
                f"{limit} per {days} day(s)",
                earliest + datetime.timedelta(days=days),
            )
    return None


RULES: tuple[Rule, ...] = (
    _deceased,
    _do_not_contact,
    _restricted_topic,
    _sensitive_content,
    _address,
    _consent,
    _quiet_hours,
    _frequency_cap,
)


def decide(facts: ContactFacts, ask: Ask) -> Decision:
    """The rule table over one patient's facts: the first rule that says no, or allowed."""
    for rule in RULES:
        denial = rule(facts, ask)
        if denial is not None:
            return denial
    return ALLOWED


# --- one patient ------------------------------------------------------------------------


class PatientFacts:
    """One patient's facts, each read from the database when a rule first asks for it."""

    def __init__(self, patient: Patient, ask: Ask) -> None:
        self.patient = patient
        self.ask = ask

    @property
    def deceased(self) -> bool:
        patient = self.patient
        return patient.deceased_on is not None or patient.lifecycle_stage == LifecycleStage.DECEASED

    @property
    def time_zone(self) -> str:
        return self.patient.time_zone

    @cached_property
    def _preference(self) -> CommunicationPreference | None:
        return CommunicationPreference.objects.filter(patient=self.patient).first()

    @property
    def do_not_contact(self) -> bool:
        return self._preference is not None and self._preference.do_not_contact

    @property
    def quiet_window(self) -> tuple[datetime.time, datetime.time] | None:
        if self._preference is None:
            return None
        return own_quiet_window(self._preference.quiet_start, self._preference.quiet_end)

    @property
    def topic_barred(self) -> bool:
        restrictions = TopicRestriction.objects.filter(patient=self.patient, topic=self.ask.topic)
        return restrictions.exists()

    @property
    def has_address(self) -> bool:
        channel = self.ask.channel
        if channel == Channel.PUSH:
            return push_subscribed(patient_id=self.patient.pk)
        system = ContactSystem.EMAIL if channel == Channel.EMAIL else ContactSystem.PHONE
        return ContactPoint.objects.filter(
            patient=self.patient, system=system, verified=True, **{ADDRESS_FLAG[channel]: True}
        ).exists()

    @property
    def channel_consent(self) -> ConsentStatus | None:
        kind = self.ask.consent_kind
        if kind is None:
            return None
        return consent_current(patient=self.patient, kind=kind, at=self.ask.at)

    @cached_property
    def opt_in(self) -> bool | None:
        return (
            ChannelOptIn.objects.filter(
                patient=self.patient, channel=self.ask.channel, purpose=self.ask.purpose
            )
            .values_list("opted_in", flat=True)
            .first()
        )

    @property
    def marketing_consent(self) -> ConsentStatus | None:
        return consent_current(patient=self.patient, kind=ConsentKind.MARKETING, at=self.ask.at)

    @property
    def recent_contacts(self) -> tuple[tuple[int, datetime.datetime | None], ...]:
        at = self.ask.at
        windows = {
            f"w{i}": Q(at__gt=at - datetime.timedelta(days=days))
            for i, (_, days) in enumerate(self.ask.caps())
        }
        if not windows:
            return ()
        aggregates: dict[str, Count | Min] = {}
        for name, window in windows.items():
            aggregates[f"{name}_n"] = Count("pk", filter=window)
            aggregates[f"{name}_first"] = Min("at", filter=window)
        longest = max(days for _, days in self.ask.caps())
        found = (
            ContactEvent.objects.filter(
                patient=self.patient,
                channel=self.ask.channel,
                at__gt=at - datetime.timedelta(days=longest),
                at__lte=at,
            )
            .exclude(purpose__in=URGENT_PURPOSES)
            .aggregate(**aggregates)
        )
        return tuple((found[f"{name}_n"], found[f"{name}_first"]) for name in windows)


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
    ask = Ask.of(channel, purpose, content_class, at, topic)
    return decide(PatientFacts(patient, ask), ask)
