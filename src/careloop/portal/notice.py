"""The notice of a new secure message: "You have a new secure message from <practice>".

It is the template `secure-message-notice` (careloop.outreach.templates), `generic`
on every channel, so it never carries the message, its subject or its topic. It goes
on the first channel, in the patient's order of preference, that `may_contact` lets
carry it now or later (quiet hours and caps only delay it); when none can, it is
stored withheld on the first with the reason, so staff see the patient was not told.
That choice is the journeys' (`journey_send`): one way to fall back across channels.
"""

from __future__ import annotations

import logging
import uuid

from careloop.consent.models import Channel, Purpose
from careloop.core.clock import now
from careloop.outreach.journeys import journey_send
from careloop.outreach.models import Message
from careloop.patients.models import Patient

logger = logging.getLogger(__name__)

NOTICE_TEMPLATE = "secure-message-notice"
# The practice's order, after the patient's own; a channel without the template is
# skipped, so the templates decide which channels notices use.
NOTICE_CHANNELS = [Channel.EMAIL, Channel.PUSH, Channel.SMS, Channel.VOICE]


def notice_key(posted_id: uuid.UUID) -> str:
    return f"portal-notice-{posted_id.hex}"


def secure_message_notice_enqueue(
    *, patient: Patient, purpose: Purpose, posted_id: uuid.UUID
) -> Message | None:
    """Enqueue the one notice for the portal message `posted_id`; the outbox row.

    Its idempotency key is made from the portal message, so enqueueing again returns
    the notice already stored. None (and a warning) when no channel has the template.
    """
    notice = journey_send(
        patient=patient,
        template_key=NOTICE_TEMPLATE,
        channels=[str(c) for c in NOTICE_CHANNELS],
        purpose=str(purpose),
        idempotency_key=notice_key(posted_id),
        at=now(),
    )
    if notice is None:
        logger.warning("portal notice: no %s template on any channel", NOTICE_TEMPLATE)
    return notice
