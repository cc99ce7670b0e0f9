"""Links in messages: short, random, expiring, naming nothing.

A reschedule or confirm link is `/m/<code>`: ten random characters that point to a
`MessageLink` row (the action, the appointment, until when). Nothing about the patient
is in the URL, a guessed or altered code finds nothing, and the link stays short enough
for a text message (a signed token of the same facts is four times longer). A code is
reused while it is valid, so the reminders about one visit carry the same link.
`link_open` says what a code is for, or why it is refused (expired, invalid), so a page
can say so clearly.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.crypto import get_random_string

from careloop.core.clock import now
from careloop.outreach.models import MessageLink
from careloop.patients.models import Patient
from careloop.scheduling.models import Appointment

ACTIONS = ("reschedule", "confirm")
CODE_LENGTH = 10  # 62**10: about 8e17 codes
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class LinkTarget:
    action: str
    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    code: str


class LinkRefused(Exception):
    """A link that is expired or unknown; `reason` is "expired" or "invalid"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signed_link(action: str, appointment: Appointment) -> str:
    """The URL of a short link doing `action` for `appointment` (reused while valid)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown link action {action!r}")
    at = now()
    # Valid for the usual span, and at least until the visit has passed.
    expires = max(
        at + datetime.timedelta(days=settings.OUTREACH_LINK_DAYS),
        appointment.start + datetime.timedelta(days=1),
    )
    # Reuse one that stays valid at least a day more.
    link = (
        MessageLink.objects.filter(
            appointment=appointment,
            action=action,
            expires_at__gt=at + datetime.timedelta(days=1),
        )
        .order_by("-expires_at")
        .first()
    )
    while link is None:
        try:
            with transaction.atomic():
                link = MessageLink.objects.create(
                    code=get_random_string(CODE_LENGTH, _ALPHABET),
                    action=action,
                    appointment=appointment,
                    patient_id=appointment.patient_id,
                    created_at=at,
                    expires_at=expires,
                )
        except IntegrityError:  # the same random code twice: draw again
            link = None
    return settings.PUBLIC_BASE_URL + reverse("outreach_links:link", args=[link.code])


def link_open(code: str) -> LinkTarget:
    link = MessageLink.objects.filter(code=code[:16]).first() if code.isalnum() else None
    if link is None:
        raise LinkRefused("invalid")
    if link.expires_at <= now():
        raise LinkRefused("expired")
    if link.opened_at is None:
        MessageLink.objects.filter(code=link.code).update(opened_at=now())
    return LinkTarget(link.action, link.appointment_id, link.patient_id, link.code)


def portal_url(path: str = "") -> str:
    return f"{settings.PUBLIC_BASE_URL}/portal/{path}"


def links_for(*, patient: Patient, appointment: Appointment | None, purpose: str) -> dict[str, str]:
    """The links a template may use for this patient (placeholders `link.*`)."""
    links = {
        "portal": portal_url(),
        "form": portal_url("forms/"),
        "unsubscribe": portal_url("preferences/"),
        "reschedule": portal_url("book/"),
    }
    if appointment is not None:
        links["reschedule"] = signed_link("reschedule", appointment)
        links["confirm"] = signed_link("confirm", appointment)
        links["join"] = portal_url(f"appointments/{appointment.pk}/")
    if appointment is not None and purpose == "survey":
        # The visit's own survey (careloop.intake); intake builds on outreach.
        from careloop.intake.services import survey_link

        links["form"] = survey_link(appointment=appointment) or links["form"]
    return links
