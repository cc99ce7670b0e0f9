"""Secure message threads: the practice posting an outbox message into a patient's inbox.

The portal is the one channel that may carry sensitive content, and it is careloop's
own: a message delivered here never leaves our database. The patient learns of it by
a notice with no content on their preferred channel (careloop.portal.notice), written
in the same transaction as the post, so there is a notice exactly when there is a post.
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction

from careloop.consent.models import Purpose
from careloop.core.clock import now
from careloop.outreach.models import Message
from careloop.portal.models import AuthorKind, Thread, ThreadMessage
from careloop.portal.notice import secure_message_notice_enqueue

# Which team inbox answers a reply to a message of each purpose.
INBOX_FOR_PURPOSE = {Purpose.APPOINTMENT: "front_desk", Purpose.BILLING: "billing"}
DEFAULT_INBOX = "care_team"


def _post(message: Message) -> ThreadMessage:
    at = now()
    thread = Thread(
        id=uuid.uuid4(),
        patient_id=message.patient_id,
        subject=message.subject or Purpose(message.purpose).label,
        inbox=INBOX_FOR_PURPOSE.get(Purpose(message.purpose), DEFAULT_INBOX),
        created_at=at,
        updated_at=at,
    )
    thread.save(force_insert=True)
    posted = ThreadMessage(
        id=uuid.uuid4(),
        thread=thread,
        author_kind=AuthorKind.PRACTICE,
        body=message.body,
        created_at=at,
        outreach_message=message,
    )
    posted.save(force_insert=True)
    return posted


@transaction.atomic
def portal_message_deliver(*, message: Message) -> ThreadMessage:
    """Post an outbox message to the patient's portal inbox, once, and enqueue the notice.

    Sent again (the dispatcher resends after a crash), it finds the post it made and
    the notice it enqueued, and writes neither twice: the post is unique per outbox
    message in the database, and the notice's idempotency key is made from the post.
    """
    posted = ThreadMessage.objects.filter(outreach_message=message).first()
    if posted is None:
        try:
            with transaction.atomic():  # a savepoint: a racing resend may have posted it
                posted = _post(message)
        except IntegrityError:
            posted = ThreadMessage.objects.get(outreach_message=message)
    secure_message_notice_enqueue(
        patient=message.patient, purpose=Purpose(message.purpose), posted_id=posted.id
    )
    return posted
