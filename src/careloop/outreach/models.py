"""The outbox (`Message`) and what patients send back (`InboundMessage`).

A message row is the durable state of one send: written in the transaction of the event
that caused it (careloop.outreach.outbox), claimed by a dispatcher under a lease and a
fencing token, and marked with the provider's id once sent (careloop.outreach.dispatch).
Bodies and addresses are class I, so they are encrypted; every other column is coded.
"""

from __future__ import annotations

import uuid

from django.db import models

from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.security.fields import BlindIndexField, EncryptedTextField


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    READ = "read", "Read"
    REPLIED = "replied", "Replied"
    WITHHELD = "withheld", "Withheld"
    DEAD = "dead", "Dead-lettered"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by message_patient_idx, which starts with it.
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    content_class = models.CharField(max_length=12, choices=ContentClass.choices)
    template_id = models.CharField(max_length=80)
    template_version = models.PositiveIntegerField(default=1)
    # A restricted topic (careloop.consent.models.RestrictedTopic) the content is about.
    topic = models.CharField(max_length=24, blank=True)
    # The language the message was rendered in; `language_fallback` when the patient's
    # own language had no version of the template.
    language = models.CharField(max_length=16, default="en")
    language_fallback = models.BooleanField(default=False)
    # What produced it: a journey enrollment's step, and the appointment a reminder is
    # about (a Y/N reply or a keypress on a call acts on it).
    enrollment = models.ForeignKey(
        "outreach.Enrollment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
        db_index=False,
    )
    step = models.PositiveSmallIntegerField(null=True, blank=True)
    appointment = models.ForeignKey(
        "scheduling.Appointment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
        db_index=False,
    )
    # The rendered message and where it goes (class I).
    address = EncryptedTextField()
    subject = EncryptedTextField(null=True, blank=True)
    body = EncryptedTextField()
    body_html = EncryptedTextField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    # The contact decision (careloop.consent.decisions.Reason) when scheduled and when
    # sent; a withheld message keeps the reason that stopped it.
    scheduled_reason = models.CharField(max_length=32)
    send_reason = models.CharField(max_length=32, blank=True)
    # Why a message failed or went to the dead letters, in coded words (an error class,
    # a provider code), never the provider's free text, which may quote the address.
    status_detail = models.CharField(max_length=200, blank=True)
    # Unique per message and shown to the provider, so a resend after a crash is
    # recognised there and not delivered twice.
    idempotency_key = models.CharField(max_length=80)
    provider_message_id = models.CharField(max_length=120, blank=True)
    lease_owner = models.CharField(max_length=80, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    fencing_token = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The dispatcher's two scans: due queued messages, expired sending leases.
            models.Index(fields=["status", "next_attempt_at"], name="message_due_idx"),
            models.Index(fields=["status", "lease_until"], name="message_lease_idx"),
            models.Index(fields=["patient", "created_at"], name="message_patient_idx"),
            # Webhooks find a message by the provider's id. Declared here rather than
            # with db_index, which on PostgreSQL adds a second, LIKE-pattern index that
            # nothing uses and every insert pays for (as does `unique=True` below).
            models.Index(fields=["provider_message_id"], name="message_provider_id_idx"),
            # Most messages (a campaign's) have neither: index only the rows that do.
            models.Index(
                fields=["enrollment"],
                condition=models.Q(enrollment__isnull=False),
                name="message_enrollment_idx",
            ),
            models.Index(
                fields=["appointment"],
                condition=models.Q(appointment__isnull=False),
                name="message_appointment_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="message_idempotency_once"),
            # A message being sent has a holder, until when, under which token.
            models.CheckConstraint(
                condition=~models.Q(status="sending")
                | (models.Q(lease_until__isnull=False) & ~models.Q(lease_owner="")),
                name="message_sending_has_lease",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=MessageStatus.values), name="message_status_known"
            ),
        ]


class InboundKind(models.TextChoices):
    OPT_OUT = "opt_out", "Opt-out keyword"
    OPT_IN = "opt_in", "Opt-in keyword"
    HELP = "help", "Help keyword"
    CONFIRM = "confirm", "Confirms an appointment (Y, C)"
    DECLINE = "decline", "Declines an appointment (N)"
    INBOX = "inbox", "For the staff inbox"


class InboundMessage(models.Model):
    """An SMS a person sent us, once per provider message id (the webhook's dedupe key).

    Keywords are acted on when received; anything else waits in the staff inbox.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider_message_id = models.CharField(max_length=120, unique=True)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SMS)
    kind = models.CharField(max_length=8, choices=InboundKind.choices)
    from_address = EncryptedTextField()
    from_address_bidx = BlindIndexField(source="from_address", kind="contact")
    body = EncryptedTextField()
    # The patients whose number it came from (a shared household phone names several).
    patients = models.ManyToManyField("patients.Patient", related_name="inbound_messages")
    received_at = models.DateTimeField()
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "id"]


class MessageTemplate(models.Model):
    """One version of a message: what it is for, the channel, the language, the text.

    A template is practice content, not PHI: placeholders (careloop.outreach.templates)
    are filled per patient when a message is rendered. Its `content_class` is declared
    and checked: the linter refuses a placeholder above the class, and a class the
    channel may not carry. One version per (key, channel, language) is active; saving
    an edit adds a version, so a sent message names the exact text it came from.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(max_length=80)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    language = models.CharField(max_length=16, default="en")
    version = models.PositiveIntegerField(default=1)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    content_class = models.CharField(max_length=12, choices=ContentClass.choices)
    # E-mail subject, push title; empty where the channel has none.
    subject = models.TextField(blank=True)
    # The text: SMS, the voice script, the push body, an e-mail's text part, the portal
    # message.
    body = models.TextField()
    body_html = models.TextField(blank=True)
    # A reply is expected (Y/N to confirm an appointment; a keypress on a call).
    expects_reply = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    built_in = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        "security.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["key", "channel", "language", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["key", "channel", "language", "version"], name="template_version_unique"
            ),
            models.UniqueConstraint(
                fields=["key", "channel", "language"],
                condition=models.Q(active=True),
                name="template_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.channel}, {self.language}, v{self.version})"


class Trigger(models.TextChoices):
    """What enrols a patient in a journey (careloop.outreach.journeys.journey_trigger)."""

    LEAD_CREATED = "lead_created", "Lead created"
    PATIENT_REGISTERED = "patient_registered", "Patient registered"
    APPOINTMENT_BOOKED = "appointment_booked", "Appointment booked"
    VISIT_COMPLETED = "visit_completed", "Visit completed"
    NO_SHOW = "no_show", "No-show"
    GAP_DUE_SOON = "gap_due_soon", "Care gap due soon"
    GAP_OVERDUE = "gap_overdue", "Care gap overdue"
    REFERRAL_SENT = "referral_sent", "Referral sent"
    REFERRAL_RECEIVED = "referral_received", "Referral received"
    STAGE_ENTERED = "stage_entered", "Lifecycle stage entered"
    CONDITION_ACTIVE = "condition_active", "Chronic condition on the problem list"
    MEDICATION_STARTED = "medication_started", "Medication started"
    MANUAL = "manual", "Manual enrolment (worklist or segment)"


class Journey(models.Model):
    """A journey: a trigger, steps and exit conditions, as data an admin edits.

    `definition` is validated by careloop.outreach.journeys (`journey_validate`); every
    saved edit bumps `version` and keeps the old one in `JourneyRevision`. An enrollment
    runs the version it started with.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    trigger = models.CharField(max_length=24, choices=Trigger.choices)
    # Narrows the trigger: {"visit_types": [...]}, {"measures": [...]}, {"stages": [...]}.
    trigger_filter = models.JSONField(default=dict, blank=True)
    # The consent purpose its messages carry.
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    definition = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    enabled = models.BooleanField(default=True)
    built_in = models.BooleanField(default=False)
    updated_at = models.DateTimeField()
    updated_by = models.ForeignKey(
        "security.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class JourneyRevision(models.Model):
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    definition = models.JSONField()
    trigger_filter = models.JSONField(default=dict)
    enabled = models.BooleanField()
    saved_at = models.DateTimeField()
    saved_by = models.ForeignKey(
        "security.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["journey", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "version"], name="journey_revision_unique")
        ]


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"


class Enrollment(models.Model):
    """One patient in one journey for one triggering event: the journey's durable state.

    Unique per (journey, patient, trigger key), so an event seen twice enrols once.
    The sweep claims due enrollments under a lease and a fencing token, like the
    outbox, and runs their next step in one transaction with what the step writes.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrollments")
    journey_version = models.PositiveIntegerField()
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="enrollments"
    )
    # The event's identity, e.g. "appointment:<uuid>:booked" (ids and codes only).
    trigger_key = models.CharField(max_length=160)
    # What the journey is about: an appointment, a care gap, a lead, a referral.
    subject_type = models.CharField(max_length=16, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=10, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    step = models.PositiveSmallIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # Coded state between steps (the step a branch waits in, answers, message ids).
    state = models.JSONField(default=dict, blank=True)
    exit_reason = models.CharField(max_length=32, blank=True)
    lease_owner = models.CharField(max_length=80, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    fencing_token = models.PositiveBigIntegerField(default=0)
    enrolled_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-enrolled_at", "id"]
        indexes = [
            models.Index(fields=["status", "next_run_at"], name="enrollment_due_idx"),
            models.Index(fields=["patient", "status"], name="enrollment_patient_idx"),
            models.Index(fields=["subject_type", "subject_id"], name="enrollment_subject_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["journey", "patient", "trigger_key"], name="enrollment_once_per_event"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=EnrollmentStatus.values),
                name="enrollment_status_known",
            ),
        ]


class EnrollmentEvent(models.Model):
    """What happened at a step (coded): the journey's history for staff and the dry run."""

    id = models.BigAutoField(primary_key=True)
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="events")
    step = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16)
    outcome = models.CharField(max_length=48)
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["enrollment", "id"]


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class StaffTask(models.Model):
    """Work for a person: call a patient who did not answer, review a reply.

    A journey step makes one (once per enrollment and step: `source_key`); staff close
    it. The title is coded practice text from the journey, never patient free text.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="staff_tasks"
    )
    title = models.CharField(max_length=160)
    queue = models.SlugField(max_length=40, default="front-desk")
    status = models.CharField(max_length=10, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    due_at = models.DateTimeField()
    source_key = models.CharField(max_length=120, unique=True)
    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks"
    )
    assigned_to = models.ForeignKey(
        "security.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["queue", "status", "due_at"], name="task_queue_idx")]


class MessageLink(models.Model):
    """A short link in a message (`/m/<code>`): what it does, for which appointment,
    until when. The code is random (no id, no PHI in the URL); a guessed or altered one
    finds nothing. Short, because an SMS pays per 153 characters."""

    code = models.CharField(max_length=16, primary_key=True)
    action = models.CharField(max_length=16)
    appointment = models.ForeignKey(
        "scheduling.Appointment", on_delete=models.CASCADE, related_name="message_links"
    )
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["appointment", "action", "expires_at"], name="link_reuse_idx")
        ]
