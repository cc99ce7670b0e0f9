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
    WITHHELD = "withheld", "Withheld"
    DEAD = "dead", "Dead-lettered"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="messages"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    content_class = models.CharField(max_length=12, choices=ContentClass.choices)
    template_id = models.CharField(max_length=80)
    template_version = models.PositiveIntegerField(default=1)
    # A restricted topic (careloop.consent.models.RestrictedTopic) the content is about.
    topic = models.CharField(max_length=24, blank=True)
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
    idempotency_key = models.CharField(max_length=80, unique=True)
    provider_message_id = models.CharField(max_length=120, blank=True, db_index=True)
    lease_owner = models.CharField(max_length=80, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    fencing_token = models.PositiveBigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The dispatcher's two scans: due queued messages, expired sending leases.
            models.Index(fields=["status", "next_attempt_at"], name="message_due_idx"),
            models.Index(fields=["status", "lease_until"], name="message_lease_idx"),
            models.Index(fields=["patient", "created_at"], name="message_patient_idx"),
        ]
        constraints = [
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
