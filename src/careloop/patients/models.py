"""The patient profile: who the patient is and how to reach them.

Names, addresses, phone numbers, e-mail addresses and identifiers are PHI class I and
are stored encrypted (careloop.security.fields); birth date, sex, language, state and
time zone are class II and stay plain so population queries remain set-based.
"""

from __future__ import annotations

import uuid

from django.db import models

from careloop.security.fields import BlindIndexField, EncryptedTextField


class LifecycleStage(models.TextChoices):
    ACQUISITION = "acquisition", "Acquisition"
    ONBOARDING = "onboarding", "Onboarding"
    FIRST_VISIT = "first_visit", "First visit"
    CARE_PLAN = "care_plan", "Care plan"
    PREVENTIVE = "preventive", "Preventive"
    CHRONIC = "chronic", "Chronic care"
    REFERRAL = "referral", "Referral"
    RETENTION_RISK = "retention_risk", "Retention risk"
    DORMANT = "dormant", "Dormant"
    TRANSFERRED = "transferred", "Transferred"
    DECEASED = "deceased", "Deceased"


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class Patient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    given_name = EncryptedTextField()
    family_name = EncryptedTextField()
    preferred_name = EncryptedTextField(null=True, blank=True)
    given_name_bidx = BlindIndexField(source="given_name", kind="name")
    family_name_bidx = BlindIndexField(source="family_name", kind="name")
    birth_date = models.DateField(db_index=True)
    sex = models.CharField(max_length=8, choices=Sex.choices, default=Sex.UNKNOWN)
    gender_identity = models.CharField(max_length=32, blank=True)
    preferred_language = models.CharField(max_length=16, default="en")
    address_line = EncryptedTextField(null=True, blank=True)
    city = EncryptedTextField(null=True, blank=True)
    postal_code = EncryptedTextField(null=True, blank=True)
    state = models.CharField(max_length=2, blank=True)
    time_zone = models.CharField(max_length=64, default="America/New_York")
    lifecycle_stage = models.CharField(
        max_length=16, choices=LifecycleStage.choices, default=LifecycleStage.ACQUISITION
    )
    lifecycle_reason = models.CharField(max_length=200, blank=True)
    # When the lifecycle rules last ran for this patient; the daily sweep picks the stalest.
    lifecycle_evaluated_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deceased_on = models.DateField(null=True, blank=True)
    # Care moved to another practice for good: the relationship ends here.
    transferred_on = models.DateField(null=True, blank=True)
    # Set when this record was found to duplicate another and merged into it
    # (careloop.patients.merge); the row stays so its history remains readable.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_records"
    )
    primary_provider = models.ForeignKey(
        "scheduling.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    home_location = models.ForeignKey(
        "scheduling.Location", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The staff member who keeps the patient's care moving between visits.
    care_coordinator = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["lifecycle_stage"], name="patient_stage_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(lifecycle_stage__in=LifecycleStage.values),
                name="patient_stage_known",
            ),
        ]

    def __str__(self) -> str:
        return f"Patient {self.id}"

    @property
    def display_name(self) -> str:
        given = self.preferred_name or self.given_name
        return f"{given} {self.family_name}"


class IdentifierKind(models.TextChoices):
    MRN = "mrn", "Medical record number"
    EXTERNAL = "external", "External id"


class PatientIdentifier(models.Model):
    """An MRN or external id, per issuing system (a FHIR identifier system URI)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="identifiers")
    system = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=IdentifierKind.choices)
    value = EncryptedTextField()
    value_bidx = BlindIndexField(source="value", kind="identifier")

    class Meta:
        ordering = ["system"]
        constraints = [
            # why: one identifier value names one patient within an issuing system.
            models.UniqueConstraint(
                fields=["system", "value_bidx"], name="patient_identifier_unique_per_system"
            ),
        ]


class ContactSystem(models.TextChoices):
    PHONE = "phone", "Phone"
    EMAIL = "email", "E-mail"


class ContactUse(models.TextChoices):
    MOBILE = "mobile", "Mobile"
    HOME = "home", "Home"
    WORK = "work", "Work"


class ContactPoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="contact_points")
    system = models.CharField(max_length=8, choices=ContactSystem.choices)
    use = models.CharField(max_length=8, choices=ContactUse.choices, default=ContactUse.MOBILE)
    value = EncryptedTextField()
    value_bidx = BlindIndexField(source="value", kind="contact")
    rank = models.PositiveSmallIntegerField(default=1)
    verified = models.BooleanField(default=False)
    # Which channels this address may carry (a landline takes voice, not SMS).
    can_sms = models.BooleanField(default=False)
    can_voice = models.BooleanField(default=False)
    can_email = models.BooleanField(default=False)

    class Meta:
        ordering = ["patient", "system", "rank"]


class PayerCategory(models.TextChoices):
    COMMERCIAL = "commercial", "Commercial"
    MEDICARE = "medicare", "Medicare"
    MEDICAID = "medicaid", "Medicaid"
    SELF_PAY = "self_pay", "Self-pay"
    OTHER = "other", "Other"


class CoverageStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CANCELLED = "cancelled", "Cancelled"
    ENTERED_IN_ERROR = "entered-in-error", "Entered in error"


class Coverage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="coverages")
    payer_category = models.CharField(max_length=16, choices=PayerCategory.choices)
    payer_name = models.CharField(max_length=120)
    plan_name = models.CharField(max_length=120, blank=True)
    member_id = EncryptedTextField(null=True, blank=True)
    subscriber_relationship = models.CharField(max_length=16, default="self")
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=CoverageStatus.choices, default=CoverageStatus.ACTIVE
    )
    rank = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["patient", "rank"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(period_end__isnull=True)
                | models.Q(period_start__isnull=True)
                | models.Q(period_end__gte=models.F("period_start")),
                name="coverage_period_ordered",
            ),
        ]


class StageChange(models.Model):
    """Lifecycle stage history, for funnel and retention analytics."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="stage_changes")
    at = models.DateTimeField()
    from_stage = models.CharField(max_length=16, choices=LifecycleStage.choices, blank=True)
    to_stage = models.CharField(max_length=16, choices=LifecycleStage.choices)
    reason = models.CharField(max_length=200)

    class Meta:
        ordering = ["patient", "at", "id"]
        indexes = [models.Index(fields=["to_stage", "at"], name="stage_change_funnel_idx")]


class TimelineKind(models.TextChoices):
    MESSAGE_SENT = "message_sent", "Message sent"
    MESSAGE_RECEIVED = "message_received", "Message received"
    APPOINTMENT = "appointment", "Appointment"
    VISIT = "visit", "Visit"
    CONSENT = "consent", "Consent"
    REFERRAL = "referral", "Referral"
    CARE_GAP = "care_gap", "Care gap"
    NOTE = "note", "Note"
    PROFILE = "profile", "Profile change"
    STAGE = "stage", "Lifecycle stage"


class TimelineEvent(models.Model):
    """One touchpoint on a patient's timeline. Every app writes here (patients.timeline).

    `summary` is written by code from coded values ("Stage: chronic care"), never from
    free text a person typed, so it holds no class-I data; free text stays encrypted in
    the row that `ref_type`/`ref_id` point at.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=TimelineKind.choices)
    summary = models.CharField(max_length=200)
    actor = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ref_type = models.CharField(max_length=40, blank=True)
    ref_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["patient", "-at"], name="timeline_patient_at_idx")]


class PatientMerge(models.Model):
    """A duplicate record folded into a surviving one, with what was moved."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    survivor = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="merges")
    merged_patient_id = models.UUIDField(unique=True)
    # Empty when an EHR feed merged the records (ADT A40); the audit log names the feed.
    merged_by = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    merged_at = models.DateTimeField()
    # Rows moved per model label, e.g. {"scheduling.Appointment": 4}.
    moved = models.JSONField(default=dict)

    class Meta:
        ordering = ["-merged_at"]


class PatientNote(models.Model):
    """A relationship note. `body` is the current text; every version, the first one
    included, is kept as a `PatientNoteRevision`, so an edit never loses what was there."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="notes")
    # PROTECT: a note's author decides who may edit it; the account must outlive it.
    author = models.ForeignKey("security.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    body = EncryptedTextField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "-created_at"], name="note_patient_created_idx")]


class PatientNoteRevision(models.Model):
    """One version of a note, as its editor saved it; rows are only ever added."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    note = models.ForeignKey(PatientNote, on_delete=models.CASCADE, related_name="revisions")
    body = EncryptedTextField()
    edited_at = models.DateTimeField()
    editor = models.ForeignKey("security.User", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["note", "-edited_at", "-id"]


class PatientTag(models.Model):
    """A coded label (a slug staff choose, e.g. `vip`, `interpreter-needed`): class II."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="tags")
    tag = models.SlugField(max_length=40)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["patient", "tag"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "tag"], name="patient_tag_unique"),
        ]


class RelationshipCode(models.TextChoices):
    PARENT = "parent", "Parent"
    GUARDIAN = "guardian", "Legal guardian"
    SPOUSE = "spouse", "Spouse or partner"
    CHILD = "child", "Child"
    CAREGIVER = "caregiver", "Caregiver"
    PROXY = "proxy", "Proxy"
    OTHER = "other", "Other"


class PatientRelationship(models.Model):
    """A caregiver or household member, and what they may do for the patient.

    The person is either another patient (`related_patient`) or someone who is not a
    patient, known by name only (`related_name`, class I, encrypted). The portal's proxy
    access reads the permission flags of the relationships in force (no `period_end`,
    or one in the future).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="relationships")
    related_patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    related_name = EncryptedTextField(null=True, blank=True)
    code = models.CharField(max_length=16, choices=RelationshipCode.choices)
    may_schedule = models.BooleanField(default=False)
    may_message = models.BooleanField(default=False)
    may_view_record = models.BooleanField(default=False)
    may_sign_consents = models.BooleanField(default=False)
    period_start = models.DateField()
    period_end = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["patient", "period_start", "id"]
        constraints = [
            # why: a relationship names exactly one person, a patient or a named outsider.
            models.CheckConstraint(
                condition=(
                    models.Q(related_patient__isnull=False, related_name__isnull=True)
                    | models.Q(related_patient__isnull=True, related_name__isnull=False)
                ),
                name="relationship_one_person",
            ),
            models.CheckConstraint(
                condition=~models.Q(related_patient=models.F("patient")),
                name="relationship_not_self",
            ),
            models.CheckConstraint(
                condition=models.Q(period_end__isnull=True)
                | models.Q(period_end__gte=models.F("period_start")),
                name="relationship_period_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(code__in=RelationshipCode.values),
                name="relationship_code_known",
            ),
        ]
