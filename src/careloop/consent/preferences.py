"""The staff preference centre's one write path: `preferences_update`.

Channel consents (comm_sms, comm_email, ...) are consents, so a change to one is a new
ledger record with its source (verbal or paper, and the note). The rest (channel order,
per-purpose opt-ins, quiet hours, do-not-contact, topic restrictions) is current state
in its own tables; its history is the audit event and the timeline entry written with
each change. `may_contact` reads both, so a change holds from the moment it commits.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db import transaction
from django.http import HttpRequest

from careloop.consent.ledger import consent_current, consent_record
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ChannelOptIn,
    CommunicationPreference,
    ConsentKind,
    ConsentStatus,
    Purpose,
    RestrictedTopic,
    TopicRestriction,
)
from careloop.consent.services import STAFF_RECORDED_METHODS, ConsentError, consent_writer
from careloop.core.clock import now
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record
from careloop.security.permissions import Actor

# The languages careloop writes messages in (the portal speaks the same two).
LANGUAGES = ("en", "es")
CHANNEL_CONSENT_KINDS = (ConsentKind.SMS, ConsentKind.EMAIL, ConsentKind.VOICE, ConsentKind.PUSH)


@dataclass(frozen=True)
class Preferences:
    """The whole preference centre as the form submits it."""

    channel_order: list[Channel]
    quiet_start: datetime.time | None
    quiet_end: datetime.time | None
    do_not_contact: bool
    # (channel, purpose) -> opted in; a pair left out keeps no stored answer.
    opt_ins: dict[tuple[Channel, Purpose], bool] = field(default_factory=dict)
    topics: frozenset[RestrictedTopic] = frozenset()
    # Only the channel consents being given or withdrawn now.
    channel_consents: dict[ConsentKind, ConsentStatus] = field(default_factory=dict)
    # The language messages are written in ("en", "es"); None leaves it as it is.
    language: str | None = None


def preferences_current(*, patient: Patient) -> Preferences:
    preference = CommunicationPreference.objects.filter(patient=patient).first()
    return Preferences(
        channel_order=[Channel(c) for c in (preference.channel_order if preference else [])],
        quiet_start=preference.quiet_start if preference else None,
        quiet_end=preference.quiet_end if preference else None,
        do_not_contact=bool(preference and preference.do_not_contact),
        opt_ins={
            (Channel(o.channel), Purpose(o.purpose)): o.opted_in
            for o in ChannelOptIn.objects.filter(patient=patient)
        },
        topics=frozenset(
            RestrictedTopic(t)
            for t in TopicRestriction.objects.filter(patient=patient).values_list(
                "topic", flat=True
            )
        ),
    )


@transaction.atomic
def preferences_update(
    *,
    actor: Actor,
    patient: Patient,
    preferences: Preferences,
    method: CaptureMethod,
    note: str = "",
    source_ip: str | None = None,
    request: HttpRequest | None = None,
) -> list[str]:
    """Apply the preference centre; returns the names of the parts that changed.

    Staff record what the patient told them (verbal, paper); the patient's own changes
    in the portal come as PORTAL_PREFERENCES, which only their portal account may use.
    """
    if method not in (*STAFF_RECORDED_METHODS, CaptureMethod.PORTAL_PREFERENCES):
        raise ConsentError("staff record preferences given verbally or on paper")
    user = consent_writer(actor=actor, patient=patient, method=method, request=request)
    if (preferences.quiet_start is None) != (preferences.quiet_end is None):
        raise ConsentError("quiet hours need both a start and an end")
    at = now()
    before = preferences_current(patient=patient)
    changed: list[str] = []
    if (
        before.channel_order,
        before.quiet_start,
        before.quiet_end,
        before.do_not_contact,
    ) != (
        preferences.channel_order,
        preferences.quiet_start,
        preferences.quiet_end,
        preferences.do_not_contact,
    ):
        CommunicationPreference.objects.update_or_create(
            patient=patient,
            defaults={
                "channel_order": [str(c) for c in preferences.channel_order],
                "quiet_start": preferences.quiet_start,
                "quiet_end": preferences.quiet_end,
                "do_not_contact": preferences.do_not_contact,
                "updated_at": at,
            },
        )
        changed.append("preferences")
    if before.opt_ins != preferences.opt_ins:
        ChannelOptIn.objects.filter(patient=patient).exclude(
            pk__in=[
                o.pk
                for o in ChannelOptIn.objects.filter(patient=patient)
                if (o.channel, o.purpose) in preferences.opt_ins
            ]
        ).delete()
        for (channel, purpose), opted_in in preferences.opt_ins.items():
            ChannelOptIn.objects.update_or_create(
                patient=patient,
                channel=channel,
                purpose=purpose,
                defaults={"opted_in": opted_in, "updated_at": at},
            )
        changed.append("opt_ins")
    language = (preferences.language or "").strip().lower()
    if language and language != patient.preferred_language:
        if language not in LANGUAGES:
            raise ConsentError(f"messages are written in {', '.join(LANGUAGES)}")
        # The patient's language is the one column of the profile the preference centre
        # owns: it decides which translation of each message they get.
        patient.preferred_language, patient.updated_at = language, at
        patient.save(update_fields=["preferred_language", "updated_at"])
        changed.append("language")
    if before.topics != preferences.topics:
        TopicRestriction.objects.filter(patient=patient).exclude(
            topic__in=list(preferences.topics)
        ).delete()
        for topic in preferences.topics - before.topics:
            TopicRestriction.objects.create(patient=patient, topic=topic, created_at=at)
        changed.append("topic_restrictions")
    for kind, status in preferences.channel_consents.items():
        if kind not in CHANNEL_CONSENT_KINDS:
            raise ConsentError("the preference centre records channel consents only")
        if consent_current(patient=patient, kind=kind, at=at) != status:
            consent_record(
                patient=patient,
                kind=kind,
                status=status,
                capture_method=method,
                captured_by=user,
                source_ip=source_ip,
                note=note.strip() or None,
                request=request,
            )
            changed.append(str(kind))
    if changed:
        timeline_add(
            patient=patient,
            kind=TimelineKind.CONSENT,
            summary="Communication preferences updated",
            at=at,
            actor=user,
            ref_type="preferences",
        )
        audit_record(
            action="preferences.update",
            request=request,
            actor=user,
            patient_id=patient.pk,
            resource_type="communication_preferences",
            fields=changed,
        )
    return changed


# The ledger kind of each channel's consent, for an opt-out recorded per purpose.
CHANNEL_KIND = {
    Channel.SMS: ConsentKind.SMS,
    Channel.EMAIL: ConsentKind.EMAIL,
    Channel.VOICE: ConsentKind.VOICE,
    Channel.PUSH: ConsentKind.PUSH,
}


@transaction.atomic
def preferences_opt_out(
    *,
    patient: Patient,
    channel: Channel,
    purpose: Purpose,
    capture_method: CaptureMethod,
    note: str,
) -> bool:
    """The patient stopped one purpose on one channel themselves, with no staff member
    involved (an e-mail unsubscribe link, a spam complaint): the opt-out `may_contact`
    reads, and a ledger record (the channel's kind, scoped to the purpose) saying how it
    came. False, and nothing written, when the patient had already opted out."""
    current = (
        ChannelOptIn.objects.select_for_update()
        .filter(patient=patient, channel=channel, purpose=purpose)
        .first()
    )
    if current is not None and not current.opted_in:
        return False
    ChannelOptIn.objects.update_or_create(
        patient=patient,
        channel=channel,
        purpose=purpose,
        defaults={"opted_in": False, "updated_at": now()},
    )
    consent_record(
        patient=patient,
        kind=CHANNEL_KIND[channel],
        scope=str(purpose),
        status=ConsentStatus.REVOKED,
        capture_method=capture_method,
        note=note,
    )
    return True
