"""Telehealth visits: a video link per appointment, handed out only when it may be used.

For the portal:

- `telehealth_join(*, patient, appointment, at=None, request=None) -> JoinAnswer`:
  `.url` when the patient may join now, else `.url` is None and `.reason` says why
  (`JoinRefusal`: not_telehealth, cancelled, too_early, ended, no_consent). Audited
  (`telehealth.join`, outcome success or denied with the reason's code).
- `telehealth_status(*, patient, appointment, at=None) -> JoinStatus`: the same
  decision without making a link or an audit event, for drawing the "Join" button
  (`.can_join`, `.reason`, `.opens_at`, `.closes_at`).

The link may be used from 15 minutes before the start (`TELEHEALTH_EARLY_MINUTES`) to
`TELEHEALTH_GRACE_MINUTES` after the end, by a patient whose telehealth consent
(consent ledger, `ConsentKind.TELEHEALTH`) is granted at that moment. `patient` is the
patient the caller has proved (the portal's signed-in patient); the appointment must be
theirs.

Rooms come from a `VideoProvider` (a small protocol). The default is a self-hosted
Jitsi Meet (`TELEHEALTH_JITSI_BASE_URL`): the room name is random (128 bits) and kept
on the appointment; with `TELEHEALTH_JITSI_APP_ID`/`_APP_SECRET` the URL carries an
HS256 JWT for that room only, valid from `nbf` (start − 15 min) to `exp` (end + grace).
"""

from __future__ import annotations

import datetime
import enum
import secrets
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import jwt
from django.conf import settings
from django.http import HttpRequest

from careloop.consent.ledger import consent_current
from careloop.consent.models import ConsentKind, ConsentStatus
from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.patients.models import Patient
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.audit import audit_record


class JoinRefusal(enum.StrEnum):
    NOT_TELEHEALTH = "not_telehealth"
    CANCELLED = "cancelled"
    TOO_EARLY = "too_early"
    ENDED = "ended"
    NO_CONSENT = "no_consent"


@dataclass(frozen=True)
class JoinStatus:
    can_join: bool
    reason: JoinRefusal | None
    opens_at: datetime.datetime
    closes_at: datetime.datetime


@dataclass(frozen=True)
class JoinAnswer:
    url: str | None
    reason: JoinRefusal | None


class VideoProvider(Protocol):
    def room_name(self) -> str:
        """A new random, unguessable room name."""
        ...

    def join_url(self, *, appointment: Appointment, room: str) -> str:
        """The URL that opens `room` for the visit."""
        ...


class JitsiProvider:
    """Self-hosted Jitsi Meet; a signed JWT when the app id and secret are set."""

    def room_name(self) -> str:
        return "careloop-" + secrets.token_hex(16)

    def join_url(self, *, appointment: Appointment, room: str) -> str:
        url = f"{settings.TELEHEALTH_JITSI_BASE_URL}/{quote(room)}"
        app_id, secret = settings.TELEHEALTH_JITSI_APP_ID, settings.TELEHEALTH_JITSI_APP_SECRET
        if not (app_id and secret):
            return url
        opens, closes = window(appointment)
        claims = {
            "iss": app_id,
            "aud": "jitsi",
            "sub": settings.TELEHEALTH_JITSI_BASE_URL.split("://", 1)[-1],
            "room": room,
            "nbf": int(opens.timestamp()),
            "exp": int(closes.timestamp()),
        }
        return f"{url}?jwt={jwt.encode(claims, secret, algorithm='HS256')}"


def video_provider() -> VideoProvider:
    return JitsiProvider()


def window(appointment: Appointment) -> tuple[datetime.datetime, datetime.datetime]:
    """When the join link works: from a little before the start to a little after the end."""
    early = datetime.timedelta(minutes=settings.TELEHEALTH_EARLY_MINUTES)
    grace = datetime.timedelta(minutes=settings.TELEHEALTH_GRACE_MINUTES)
    return appointment.start - early, appointment.end + grace


def telehealth_status(
    *, patient: Patient, appointment: Appointment, at: datetime.datetime | None = None
) -> JoinStatus:
    """May `patient` join `appointment`'s video visit at `at` (default now), and if not, why."""
    if appointment.patient_id != patient.pk:
        raise NotFound("no such appointment")
    at = at or now()
    opens, closes = window(appointment)
    reason: JoinRefusal | None = None
    if not appointment.appointment_type.telehealth:
        reason = JoinRefusal.NOT_TELEHEALTH
    elif appointment.status in (AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW):
        reason = JoinRefusal.CANCELLED
    elif at < opens:
        reason = JoinRefusal.TOO_EARLY
    elif at >= closes or appointment.status == AppointmentStatus.FULFILLED:
        reason = JoinRefusal.ENDED
    elif (
        consent_current(patient=patient, kind=ConsentKind.TELEHEALTH, at=at)
        != ConsentStatus.GRANTED
    ):
        reason = JoinRefusal.NO_CONSENT
    return JoinStatus(reason is None, reason, opens, closes)


def telehealth_join(
    *,
    patient: Patient,
    appointment: Appointment,
    at: datetime.datetime | None = None,
    request: HttpRequest | None = None,
    provider: VideoProvider | None = None,
) -> JoinAnswer:
    """The video link when `patient` may join now, else the reason; audited either way."""
    status = telehealth_status(patient=patient, appointment=appointment, at=at)
    url = None
    if status.can_join:
        provider = provider or video_provider()
        room = appointment_room(appointment, provider)
        url = provider.join_url(appointment=appointment, room=room)
    audit_record(
        action="telehealth.join",
        request=request,
        actor_kind="patient",
        actor_id=str(patient.pk),
        patient_id=patient.pk,
        resource_type="appointment",
        resource_id=str(appointment.pk),
        fields=("telehealth_room",),
        outcome="success" if status.can_join else "denied",
        reason="" if status.reason is None else str(status.reason),
    )
    return JoinAnswer(url, status.reason)


def appointment_room(appointment: Appointment, provider: VideoProvider | None = None) -> str:
    """The appointment's room name, made (once: a conditional update) on first use."""
    if appointment.telehealth_room:
        return appointment.telehealth_room
    room = (provider or video_provider()).room_name()
    Appointment.objects.filter(pk=appointment.pk, telehealth_room="").update(telehealth_room=room)
    appointment.refresh_from_db(fields=["telehealth_room"])
    return appointment.telehealth_room
