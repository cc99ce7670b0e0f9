from __future__ import annotations

import uuid

from django.db import models


class ReferralDirection(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class ReferralStatus(models.TextChoices):
    SENT = "sent", "Sent"
    SCHEDULED = "scheduled", "Scheduled"
    COMPLETED = "completed", "Completed"
    CLOSED = "closed", "Closed (loop closed)"
    CANCELLED = "cancelled", "Cancelled"


class Referral(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="referrals"
    )
    direction = models.CharField(max_length=8, choices=ReferralDirection.choices)
    status = models.CharField(max_length=12, choices=ReferralStatus.choices)
    specialty = models.CharField(max_length=80)
    counterpart = models.CharField(max_length=120, help_text="The referring or receiving practice")
    reason_system = models.CharField(max_length=100, blank=True)
    reason_code = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "direction"], name="referral_status_idx")]
