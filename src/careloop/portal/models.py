"""What the patient's portal holds: secure message threads, and the browsers that asked
for push notifications.

A thread is a conversation between one patient and a team inbox of the practice; its
messages come from the patient, from staff, or from the practice itself (an outreach
message delivered to the portal, careloop.outreach.channels.portal). Subjects,
bodies, attachment names and attachment bytes are class I. Assignment, the answer's
due time (SLA) and read receipts are careloop.portal.messaging's.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from careloop.security.fields import EncryptedTextField


class ThreadStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Thread(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="portal_threads"
    )
    subject = EncryptedTextField()
    # The team inbox that answers the thread (a code, e.g. "care_team", "front_desk").
    inbox = models.CharField(max_length=40, default="care_team")
    status = models.CharField(max_length=8, choices=ThreadStatus.choices, default=ThreadStatus.OPEN)
    created_at = models.DateTimeField()
    # The last message's time: inboxes list threads by it.
    updated_at = models.DateTimeField()
    # The staff member working the thread (careloop.portal.messaging.thread_assign).
    assigned_to = models.ForeignKey(
        "security.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # When the inbox owes the patient an answer: set by the patient's first unanswered
    # message (its time plus the inbox's SLA in business days), cleared by a staff reply.
    due_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "id"]
        indexes = [
            models.Index(fields=["patient", "-updated_at"], name="thread_patient_idx"),
            models.Index(fields=["inbox", "status", "-updated_at"], name="thread_inbox_idx"),
            models.Index(fields=["status", "due_at"], name="thread_due_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ThreadStatus.values), name="thread_status_known"
            ),
            # why: a closed thread says when it closed; an open one owes nothing about it.
            models.CheckConstraint(
                condition=models.Q(status=ThreadStatus.OPEN, closed_at__isnull=True)
                | models.Q(status=ThreadStatus.CLOSED, closed_at__isnull=False),
                name="thread_closed_at_by_status",
            ),
        ]


class AuthorKind(models.TextChoices):
    PATIENT = "patient", "Patient"
    STAFF = "staff", "Staff"
    PRACTICE = "practice", "The practice (sent by careloop)"


class ThreadMessage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    author_kind = models.CharField(max_length=8, choices=AuthorKind.choices)
    # The staff member (or the patient's portal account) who wrote it; none for the
    # practice. Accounts are disabled, never deleted, so the author stays known.
    author = models.ForeignKey(
        "security.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    body = EncryptedTextField()
    created_at = models.DateTimeField()
    # When the other side (the patient for staff and practice messages, the inbox for
    # the patient's) first opened it.
    read_at = models.DateTimeField(null=True, blank=True)
    # The outbox message this delivers, for a message from the practice.
    outreach_message = models.ForeignKey(
        "outreach.Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # The hidden key of the form that wrote it: a form submitted twice posts once.
    idempotency_key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["thread", "created_at"], name="thread_message_idx")]
        constraints = [
            # why: the double submit of one form (a second click, a resent POST) finds the
            # message the first one wrote instead of writing a second.
            models.UniqueConstraint(
                fields=["author", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="thread_message_once_per_form",
            ),
            # An outbox message is posted once, however often the dispatcher resends it
            # after a crash: the resend finds this row instead of writing a second.
            models.UniqueConstraint(
                fields=["outreach_message"],
                condition=models.Q(outreach_message__isnull=False),
                name="thread_message_once_per_outreach",
            ),
            models.CheckConstraint(
                condition=models.Q(author_kind__in=AuthorKind.values),
                name="thread_message_author_known",
            ),
            # A staff message names its writer; the practice has none.
            models.CheckConstraint(
                condition=~models.Q(author_kind=AuthorKind.STAFF) | models.Q(author__isnull=False),
                name="thread_message_staff_named",
            ),
            models.CheckConstraint(
                condition=~models.Q(author_kind=AuthorKind.PRACTICE)
                | models.Q(author__isnull=True),
                name="thread_message_practice_unnamed",
            ),
        ]


class ThreadAttachment(models.Model):
    """A file sent with a message (careloop.portal.attachments): its name is class I
    (a file name can name the patient), its bytes are stored encrypted in
    `ThreadAttachmentChunk` rows. `content_type` is what its content was sniffed to be,
    one of an allowlist, never what the browser claimed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey(ThreadMessage, on_delete=models.CASCADE, related_name="attachments")
    filename = EncryptedTextField()
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    chunks = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]


class ThreadAttachmentChunk(models.Model):
    """One piece of an attachment's bytes, base64 in an encrypted column bound to this
    row. Pieces keep each row small, so key rotation (which re-seals rows in batches)
    never holds whole files in memory."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    attachment = models.ForeignKey(
        ThreadAttachment, on_delete=models.CASCADE, related_name="pieces"
    )
    index = models.PositiveIntegerField()
    data = EncryptedTextField()

    class Meta:
        ordering = ["attachment", "index"]
        constraints = [
            models.UniqueConstraint(fields=["attachment", "index"], name="attachment_chunk_once"),
        ]


class RevokeReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", "The patient turned notifications off"
    GONE = "gone", "The push service no longer knows it (404 or 410)"
    REPLACED = "replaced", "The browser subscribed again, or for another patient"


class PushSubscription(models.Model):
    """One browser's Web Push subscription (the JSON of `PushManager.subscribe()`).

    The endpoint is a capability URL (whoever holds it can wake the browser) and names
    the patient's push service account, so it and the keys are class I. Equality goes
    through `endpoint_bidx`, an HMAC under the blind-index key.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = EncryptedTextField()
    endpoint_bidx = models.BinaryField(max_length=16)
    # The browser's P-256 public key and auth secret (base64url), which encrypt payloads.
    p256dh = EncryptedTextField()
    auth = EncryptedTextField()
    # Browser family and platform, coded ("chrome/android"); never the raw header.
    user_agent = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=12, choices=RevokeReason.choices, blank=True)

    class Meta:
        ordering = ["patient", "-created_at"]
        indexes = [models.Index(fields=["patient", "revoked_at"], name="push_patient_active_idx")]
        constraints = [
            # One live subscription per browser endpoint: a browser that subscribes again,
            # or for another patient, replaces the old row rather than doubling pushes.
            models.UniqueConstraint(
                fields=["endpoint_bidx"],
                condition=models.Q(revoked_at__isnull=True),
                name="push_endpoint_one_active",
            ),
            models.CheckConstraint(
                condition=(models.Q(revoked_at__isnull=True) & models.Q(revoke_reason=""))
                | (models.Q(revoked_at__isnull=False) & ~models.Q(revoke_reason="")),
                name="push_revoked_with_reason",
            ),
        ]


class PushDelivery(models.Model):
    """A push service accepted one outbox message for one subscription.

    A message goes to every live subscription of the patient; when some accept and
    another asks us to retry, the retry skips those that already have it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey("outreach.Message", on_delete=models.CASCADE, related_name="+")
    subscription = models.ForeignKey(
        PushSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The push message resource (the Location the service answered, RFC 8030 5).
    push_resource = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField()

    class Meta:
        ordering = ["delivered_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "subscription"], name="push_delivery_once"),
        ]


# --- portal accounts and one-time challenges (careloop.portal.accounts) -------------------


class PortalAccount(models.Model):
    """A patient user's link to the one patient record they are (docs/decisions.md).

    One row per user and one per patient: self-registration can never give a record a
    second account, nor an account a second record. Parents and caregivers will get
    their own table of proxy grants beside this one (careloop.portal.accounts.
    portal_patients_for), never a second row here.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        primary_key=True,
        related_name="portal_account",
    )
    patient = models.OneToOneField(
        "patients.Patient", on_delete=models.PROTECT, related_name="portal_account"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "user"]


class ChallengeKind(models.TextChoices):
    REGISTER_CODE = "register_code", "Registration code"
    SIGNIN_LINK = "signin_link", "Sign-in link"


class PortalChallenge(models.Model):
    """A one-time secret sent to a patient's contact on file: a 6-digit registration
    code or a sign-in link. Only a keyed digest of the secret is stored; the message
    that carried it is in the outbox (encrypted). Used once (`used_at`), then never
    again; `attempts` bounds guessing a code."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=ChallengeKind.choices)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="portal_challenges"
    )
    # The account a sign-in link opens (None for a registration code).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=8)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=ChallengeKind.values), name="portal_challenge_kind"
            ),
            # why: every one-time secret expires; one without an end is a standing password.
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="portal_challenge_expires",
            ),
            # why: a sign-in link opens exactly one account; a code opens none yet.
            models.CheckConstraint(
                condition=models.Q(kind="signin_link", user__isnull=False)
                | models.Q(kind="register_code", user__isnull=True),
                name="portal_challenge_user_by_kind",
            ),
        ]


class CardSide(models.TextChoices):
    FRONT = "front", "Front"
    BACK = "back", "Back"


class InsuranceCard(models.Model):
    """A picture (or PDF) of one side of the patient's insurance card, uploaded from the
    portal (careloop.portal.insurance). The newest row of a side is the current one;
    an older one is kept with `superseded_at` set (history). Its name is class I and its
    bytes are stored encrypted in `InsuranceCardChunk` rows, like a message attachment;
    `content_type` is what the content was sniffed to be (JPEG, PNG or PDF)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="insurance_cards"
    )
    # The coverage on file when it was uploaded (none when the patient had none).
    coverage = models.ForeignKey(
        "patients.Coverage", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    side = models.CharField(max_length=8, choices=CardSide.choices)
    filename = EncryptedTextField()
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    chunks = models.PositiveIntegerField()
    uploaded_at = models.DateTimeField()
    uploaded_by = models.ForeignKey(
        "security.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    superseded_at = models.DateTimeField(null=True, blank=True)
    # The upload form's random key: a form sent twice finds the cards of the first.
    idempotency_key = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["patient", "side", "-uploaded_at", "id"]
        constraints = [
            # Why: "the current card" must be one row per side, even under two tabs.
            models.UniqueConstraint(
                fields=["patient", "side"],
                condition=models.Q(superseded_at__isnull=True),
                name="insurance_card_one_current_side",
            ),
            models.UniqueConstraint(
                fields=["patient", "side", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="insurance_card_upload_once",
            ),
        ]


class InsuranceCardChunk(models.Model):
    """One piece of a card's bytes, base64 in an encrypted column bound to this row
    (careloop.portal.attachments.content_pieces)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    card = models.ForeignKey(InsuranceCard, on_delete=models.CASCADE, related_name="pieces")
    index = models.PositiveIntegerField()
    data = EncryptedTextField()

    class Meta:
        ordering = ["card", "index"]
        constraints = [
            models.UniqueConstraint(fields=["card", "index"], name="insurance_card_chunk_once"),
        ]
