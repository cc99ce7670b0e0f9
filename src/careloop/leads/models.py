from __future__ import annotations

import uuid

from django.db import models

from careloop.security.fields import BlindIndexField, EncryptedTextField


class LeadSource(models.TextChoices):
    WEB_FORM = "web_form", "Website form"
    PHONE_CALL = "phone_call", "Phone call"
    PHYSICIAN_REFERRAL = "physician_referral", "Physician referral"
    COMMUNITY_EVENT = "community_event", "Community event"
    PAID_SEARCH = "paid_search", "Paid search"
    WORD_OF_MOUTH = "word_of_mouth", "Word of mouth"


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    QUALIFIED = "qualified", "Qualified"
    CONVERTED = "converted", "Converted"
    LOST = "lost", "Lost"


class Lead(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    given_name = EncryptedTextField()
    family_name = EncryptedTextField()
    family_name_bidx = BlindIndexField(source="family_name", kind="name")
    phone = EncryptedTextField(null=True, blank=True)
    email = EncryptedTextField(null=True, blank=True)
    source = models.CharField(max_length=24, choices=LeadSource.choices)
    campaign = models.CharField(max_length=80, blank=True)
    interest = models.CharField(max_length=80, blank=True)
    status = models.CharField(max_length=12, choices=LeadStatus.choices, default=LeadStatus.NEW)
    created_at = models.DateTimeField(db_index=True)
    converted_patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
