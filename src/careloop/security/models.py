from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models

from careloop.security.fields import EncryptedTextField


class Role(models.TextChoices):
    ADMIN = "admin", "Administrator"
    FRONT_DESK = "front_desk", "Front desk"
    CARE_COORDINATOR = "care_coordinator", "Care coordinator"
    CLINICIAN = "clinician", "Clinician"
    MARKETING = "marketing", "Marketing"
    ANALYST = "analyst", "Analyst"
    AUDITOR = "auditor", "Auditor"
    PATIENT = "patient", "Patient"


STAFF_ROLES = [role for role in Role if role != Role.PATIENT]


class User(AbstractUser):
    """A person who signs in: staff in one of the staff roles, or a patient in the portal."""

    role = models.CharField(max_length=32, choices=Role.choices, default=Role.FRONT_DESK)
    # The care team and location a clinician or care coordinator belongs to: her patient
    # scope (careloop.security.scope). Null for roles that are not scoped.
    provider = models.ForeignKey(
        "scheduling.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    location = models.ForeignKey(
        "scheduling.Location", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["username"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="security_user_role_known"
            ),
        ]


class DataKey(models.Model):
    """A data key, stored wrapped by the master key (careloop.security.crypto)."""

    class Purpose(models.TextChoices):
        FIELD = "field", "Field encryption"
        BLIND = "blind", "Blind index"

    version = models.PositiveIntegerField(primary_key=True)
    purpose = models.CharField(max_length=8, choices=Purpose.choices)
    wrapped = models.BinaryField()
    created_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["version"]
        constraints = [
            # why: blind indexes must stay comparable across rows, so there is exactly one
            # blind-index key; rotating it means recomputing every index, not adding a key.
            models.UniqueConstraint(
                fields=["purpose"],
                condition=models.Q(purpose="blind"),
                name="security_datakey_one_blind_key",
            ),
        ]


# --- the audit log (careloop.security.audit) ---------------------------------------------


class AuditEvent(models.Model):
    """One audited action. Append-only (database triggers) and hash-chained by `seq`.

    `audit_record` inserts the event unsealed (`seq`, `prev_hash`, `hash` NULL); the
    sealer (`careloop.security.audit.audit_seal`, a worker sweep every second) chains
    committed events in insertion order (the `rid` identity column on PostgreSQL, the
    rowid on SQLite, neither a model field) and fills those three columns, the only
    UPDATE the triggers allow. `hash` covers every other column, `prev_hash` included,
    so `careloop audit verify` notices an edited, deleted, inserted or reordered event.
    No free text lives here: the reason someone typed is in `AuditReason`, encrypted,
    and only its keyed digest is chained, because encrypted columns are re-sealed on key
    rotation and this table refuses that UPDATE.
    """

    class ActorKind(models.TextChoices):
        USER = "user", "Staff user"
        PATIENT = "patient", "Patient"
        SYSTEM = "system", "System job"
        INTEGRATION = "integration", "Integration client"
        ANONYMOUS = "anonymous", "Anonymous"

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        DENIED = "denied", "Denied"
        FAILURE = "failure", "Failure"

    id = models.UUIDField(primary_key=True)
    # NULL until sealed; then 1, 2, 3, ... in sealing order.
    seq = models.BigIntegerField(unique=True, null=True, blank=True)
    at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=150, blank=True, db_index=True)
    # Staff username only; a patient is never named here, only referenced by id.
    actor_label = models.CharField(max_length=150, blank=True, db_index=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    # Also indexed with the time (audit_patient_at_idx): a patient's accounting of
    # disclosures reads one patient's events newest first. (The single-column index
    # stays: altering the column would make SQLite rebuild the table, which drops the
    # append-only triggers.)
    patient_id = models.UUIDField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    resource_type = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=128, blank=True)
    fields = models.JSONField(default=list, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason_digest = models.BinaryField(max_length=32, blank=True, default=b"")
    prev_hash = models.BinaryField(max_length=32, null=True, blank=True)
    hash = models.BinaryField(max_length=32, null=True, blank=True)

    class Meta:
        # Sealed events in chain order, then the unsealed ones (newest seconds) by time.
        ordering = [models.F("seq").asc(nulls_last=True), "at"]
        indexes = [
            models.Index(
                fields=["patient_id", "-at"],
                condition=models.Q(patient_id__isnull=False),
                name="audit_patient_at_idx",
            ),
        ]
        constraints = [
            # why: the chain has no gaps by construction, so seq 0 is the genesis only.
            models.CheckConstraint(condition=models.Q(seq__gt=0), name="security_audit_seq_pos"),
            models.CheckConstraint(
                condition=models.Q(outcome__in=["success", "denied", "failure"]),
                name="security_audit_outcome_known",
            ),
        ]


class AuditChainHead(models.Model):
    """The one row holding the chain's last (seq, hash); locked by the sealer.

    The lock serialises sealers so that seq has no gaps and each event links to its
    predecessor. Writers of events never take it.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField()
    hash = models.BinaryField(max_length=32)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="security_auditchainhead_one"),
        ]


class AuditReason(models.Model):
    """The free-text reason of an audit event (e.g. break-the-glass), PHI class I."""

    event = models.OneToOneField(
        AuditEvent, on_delete=models.PROTECT, primary_key=True, related_name="reason"
    )
    text = EncryptedTextField()


class AuditMaintenance(models.Model):
    """The SQLite audit triggers' off switch (PostgreSQL uses a session setting instead).

    Unmanaged, so a test-suite flush leaves it alone; created by the audit migration.
    See `careloop.security.audit.audit_maintenance`.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    enabled = models.BooleanField(default=False)

    class Meta:
        managed = False
        db_table = "security_auditmaintenance"


# --- break-the-glass (careloop.security.break_glass) --------------------------------------


class BreakGlassGrant(models.Model):
    """Emergency access to one patient outside the user's scope, until `expires_at`.

    Rows are never changed or deleted: the report of emergency access reads them all.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="break_glass_grants")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="+")
    # Free text a person typed, often clinical ("unconscious in the ED"): PHI class I.
    reason = EncryptedTextField()
    granted_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-granted_at", "id"]
        indexes = [
            # The scope check: this user's unexpired grants.
            models.Index(fields=["user", "expires_at"], name="security_bg_user_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("granted_at")),
                name="security_breakglass_expires_after_grant",
            ),
        ]


# --- personal API tokens (careloop.security.tokens) ----------------------------------------


class ApiToken(models.Model):
    """A staff member's bearer token for the JSON API: `clp_<prefix>_<secret>`.

    Only the SHA-256 of the whole token is stored, so a copy of the database cannot be
    used to call the API. `prefix` is not secret: it finds the row and names the token
    in lists and audit events. Rows are kept after revocation or expiry, for the audit.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=8, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            # why: every token expires; one without an end would outlive its owner's job.
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="security_apitoken_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return f"API token {self.prefix}"
