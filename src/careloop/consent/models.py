"""Consent and communication preferences: the ledger, restrictions and what was sent."""

from __future__ import annotations

import uuid

from django.db import models

from careloop.security.fields import EncryptedTextField


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


class ContentClass(models.TextChoices):
    """How revealing a message is; decides which channels may carry it."""

    GENERIC = "generic", "Generic (no health information)"
    LOGISTICS = "logistics", "Logistics (a time and a place)"
    SENSITIVE = "sensitive", "Sensitive (a diagnosis, medication or result)"


class RestrictedTopic(models.TextChoices):
    """Conditions whose content never leaves the secure portal (e.g. 42 CFR Part 2)."""

    BEHAVIORAL_HEALTH = "behavioral_health", "Behavioural health"
    SUBSTANCE_USE = "substance_use", "Substance use disorder (42 CFR Part 2)"
    HIV = "hiv", "HIV"
    REPRODUCTIVE_HEALTH = "reproductive_health", "Reproductive health"


class ConsentKind(models.TextChoices):
    TREATMENT = "treatment", "Consent to treatment"
    NPP_ACK = "npp_ack", "Notice of Privacy Practices acknowledgement"
    SMS = "comm_sms", "Text messages (TCPA)"
    EMAIL = "comm_email", "E-mail"
    VOICE = "comm_voice", "Voice calls"
    PUSH = "comm_push", "Push notifications"
    MARKETING = "marketing", "Marketing"
    TELEHEALTH = "telehealth", "Telehealth"
    RESEARCH = "research", "Research"
    THIRD_PARTY = "third_party", "Sharing with a named third party"


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", "Granted"
    DENIED = "denied", "Denied"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class CaptureMethod(models.TextChoices):
    PORTAL_ESIGNATURE = "portal_esign", "Portal e-signature"
    STAFF_ESIGNATURE = "staff_esign", "Staff-assisted e-signature"
    PAPER = "paper", "Paper, scanned by staff"
    VERBAL = "verbal", "Verbal, by phone with staff"
    SMS_KEYWORD = "sms_keyword", "SMS keyword"
    IMPORTED = "imported", "Imported from the EHR"
    # The patient in the portal's preference centre (channels, purposes, push).
    PORTAL_PREFERENCES = "portal_prefs", "Portal preference centre"
    # The recipient's own unsubscribe from an e-mail (link, one-click or mailto).
    EMAIL_LINK = "email_link", "E-mail unsubscribe link"


class ConsentRecord(models.Model):
    """One entry in the consent ledger. Never edited: a change is a new record.

    The current state of a (patient, kind, scope) is its newest record whose period
    covers the moment asked about (careloop.consent.ledger).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="consents"
    )
    kind = models.CharField(max_length=16, choices=ConsentKind.choices)
    # What the consent covers within its kind: a purpose for communication consents, the
    # third party's organisation name for sharing; empty for the whole kind.
    scope = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=8, choices=ConsentStatus.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(null=True, blank=True)
    capture_method = models.CharField(max_length=16, choices=CaptureMethod.choices)
    captured_at = models.DateTimeField()
    # When careloop wrote the record; breaks ties between records captured at once.
    recorded_at = models.DateTimeField()
    captured_by = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    document_version = models.CharField(max_length=40, blank=True)
    document_sha256 = models.CharField(max_length=64, blank=True)
    # Why the record exists, in words a person wrote (a STOP reply, "patient asked by
    # phone"); may name people, so it is class I.
    note = EncryptedTextField(null=True, blank=True)
    # The consent document version shown to the signer (its text and hash are also
    # copied above, so the record stands on its own).
    document = models.ForeignKey(
        "consent.ConsentDocument",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="records",
    )
    # An e-signature: the full name the signer typed (class I), and for a proxy who they
    # are and under what authority (e.g. "parent of a minor", "health care POA").
    signature_name = EncryptedTextField(null=True, blank=True)
    signer_is_proxy = models.BooleanField(default=False)
    proxy_name = EncryptedTextField(null=True, blank=True)
    proxy_authority = EncryptedTextField(null=True, blank=True)
    # SHA-256 over the record's canonical content (careloop.consent.integrity): a later
    # change to any column, the signature included, no longer matches it.
    integrity_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["patient", "kind", "captured_at", "recorded_at"]
        indexes = [
            models.Index(fields=["patient", "kind", "captured_at"], name="consent_current_idx")
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(period_end__isnull=True)
                | models.Q(period_end__gt=models.F("period_start")),
                name="consent_period_ordered",
            ),
        ]


class ConsentDocument(models.Model):
    """One published version of the practice's consent text for a kind (not PHI).

    Versions are never edited: publishing is adding a row. The current version of a
    kind is its newest by `published_at`.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=ConsentKind.choices)
    version = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    body = models.TextField()
    body_sha256 = models.CharField(max_length=64)
    published_at = models.DateTimeField()
    # Patients must (re-)acknowledge the current version of a required document.
    requires_acknowledgement = models.BooleanField(default=False)
    published_by = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["kind", "-published_at"]
        constraints = [
            # A version label names one text: records cite it by label and hash.
            models.UniqueConstraint(fields=["kind", "version"], name="consent_doc_one_per_version"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.version}"


class TopicRestriction(models.Model):
    """A patient's own bar on outreach about a restricted topic, beyond portal-only."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="topic_restrictions"
    )
    topic = models.CharField(max_length=24, choices=RestrictedTopic.choices)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["patient", "topic"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "topic"], name="restriction_one_per_topic")
        ]


class ContactEvent(models.Model):
    """A message that reached a patient, by any sender: what frequency caps count."""

    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="contact_events"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    at = models.DateTimeField()

    class Meta:
        ordering = ["patient", "at"]
        indexes = [models.Index(fields=["patient", "channel", "at"], name="contact_event_cap_idx")]


class VendorKind(models.TextChoices):
    SMS = "sms", "SMS provider"
    EMAIL = "email", "E-mail provider"
    EHR = "ehr", "EHR"
    CLEARINGHOUSE = "clearinghouse", "Clearinghouse"
    TELEHEALTH = "telehealth", "Telehealth"
    OTHER = "other", "Other"


class BaaStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    NONE = "none", "None"


class Vendor(models.Model):
    """A business associate that may receive PHI, with its BAA (careloop.consent.baa)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=VendorKind.choices)
    baa_status = models.CharField(max_length=8, choices=BaaStatus.choices, default=BaaStatus.NONE)
    baa_signed_on = models.DateField(null=True, blank=True)
    baa_expires_on = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        constraints = [
            # An active BAA was signed on some day; the dates bound one period.
            models.CheckConstraint(
                condition=~models.Q(baa_status="active") | models.Q(baa_signed_on__isnull=False),
                name="vendor_active_baa_signed",
            ),
            models.CheckConstraint(
                condition=models.Q(baa_expires_on__isnull=True)
                | models.Q(baa_signed_on__isnull=True)
                | models.Q(baa_expires_on__gt=models.F("baa_signed_on")),
                name="vendor_baa_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name
