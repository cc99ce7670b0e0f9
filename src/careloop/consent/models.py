"""Communication preferences. (The consent ledger and `may_contact` build on these.)"""

from __future__ import annotations

from django.db import models


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "E-mail"
    VOICE = "voice", "Voice call"
    PUSH = "push", "Push"
    PORTAL = "portal", "Secure portal"


class Purpose(models.TextChoices):
    APPOINTMENT = "appointment", "Appointments"
    CARE_REMINDER = "care_reminder", "Care reminders"
    BILLING = "billing", "Billing"
    MARKETING = "marketing", "Marketing"
    SURVEY = "survey", "Surveys"


class CommunicationPreference(models.Model):
    patient = models.OneToOneField(
        "patients.Patient", on_delete=models.CASCADE, primary_key=True, related_name="preference"
    )
    # Channels in the patient's order of preference, e.g. ["sms", "email", "portal"].
    channel_order = models.JSONField(default=list)
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    do_not_contact = models.BooleanField(default=False)
    updated_at = models.DateTimeField()


class ChannelOptIn(models.Model):
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="opt_ins"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    opted_in = models.BooleanField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["patient", "channel", "purpose"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "channel", "purpose"], name="optin_one_per_channel_purpose"
            )
        ]
