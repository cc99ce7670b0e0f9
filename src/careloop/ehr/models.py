"""What careloop knows about the EHRs it takes data from, and what it did with each item.

- `Source`: an EHR (or a folder of files) that sends data; FHIR sources also carry what
  SMART Backend Services needs to pull from them.
- `SourceRecord`: one FHIR resource from a source that became a careloop row other than
  a clinical fact (a Patient, a Coverage, an Appointment...), with its version and
  content hash so a re-import knows it is unchanged. Clinical facts carry the same
  identity on their own rows (careloop.clinical.models.ClinicalFact).
- `ImportRun`: one import (files, a Bulk Data sync, an MLLP session) and its counts.
- `QuarantineItem`: an item that could not be taken in, with where it came from and a
  reason without PHI; the item itself is kept encrypted so staff can re-process it.
- `MatchReview`: an incoming patient that might be someone careloop already knows.
  Never merged silently: a new record is made and staff decide.
- `Hl7Message`: each HL7 v2 message received over MLLP, once per (sender, control id),
  with the ACK that was sent so a repeat gets the same answer.
"""

from __future__ import annotations

import uuid

from django.db import models

from careloop.security.fields import EncryptedTextField


class SourceKind(models.TextChoices):
    FILES = "files", "FHIR files"
    FHIR = "fhir", "FHIR server (SMART Backend Services)"
    HL7 = "hl7", "HL7 v2 over MLLP"


class Source(models.Model):
    name = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=8, choices=SourceKind.choices, default=SourceKind.FILES)
    # The vendor whose BAA covers this feed (careloop.consent.baa); required for live feeds.
    vendor = models.ForeignKey(
        "consent.Vendor", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    fhir_base = models.URLField(max_length=300, blank=True)
    token_url = models.URLField(max_length=300, blank=True)
    client_id = models.CharField(max_length=200, blank=True)
    group_id = models.CharField(max_length=200, blank=True)
    # The key careloop signs its client assertions with (`careloop ehr keygen`).
    key_id = models.CharField(max_length=100, blank=True)
    # The `transactionTime` of the last sync that completed: the next `_since`.
    last_transaction_time = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SourceRecord(models.Model):
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="records")
    resource_type = models.CharField(max_length=32)
    resource_id = models.CharField(max_length=64)
    version_id = models.CharField(max_length=64, blank=True)
    last_updated = models.DateTimeField(null=True, blank=True)
    content_hash = models.BigIntegerField()
    # The careloop row this resource became (a patient, a coverage...), if any.
    target_id = models.UUIDField(null=True, blank=True)
    # The careloop patient the resource is about (for Patient: the patient itself).
    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The subject's id at the source, kept until that Patient arrives.
    subject_ref = models.CharField(max_length=64, blank=True)
    # For resources kept for reference only (a Medication): their codes, as
    # [[system, code, display], ...], so a request naming the drug by reference gets them.
    codes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "resource_type", "resource_id"], name="source_record_identity"
            )
        ]
        indexes = [models.Index(fields=["patient"], name="source_record_patient_idx")]


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    DONE_WITH_QUARANTINE = "quarantined", "Done, with quarantined items"
    FAILED = "failed", "Failed"


class ImportRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="runs")
    kind = models.CharField(max_length=16)  # files, bulk-sync, mllp, reprocess
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.RUNNING)
    # {resource type: {read, created, updated, unchanged, quarantined, skipped}}
    counts = models.JSONField(default=dict)
    # A reason without PHI when the run failed as a whole.
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-started_at"]


class QuarantineStatus(models.TextChoices):
    OPEN = "open", "Open"
    REPROCESSED = "reprocessed", "Re-processed"
    DISMISSED = "dismissed", "Dismissed"


class QuarantineItem(models.Model):
    # A UUID like every table with sealed columns: the ciphertext is bound to its row.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="quarantine")
    run = models.ForeignKey(
        ImportRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="quarantine"
    )
    # fhir-ndjson, fhir-json, bulk-error, hl7
    format = models.CharField(max_length=16)
    # Where it came from: a file name (never a patient's) and a line, or an HL7 control id.
    origin = models.CharField(max_length=300)
    line = models.PositiveIntegerField(null=True, blank=True)
    resource_type = models.CharField(max_length=32, blank=True)
    # Why, in words without PHI: "line 12: not JSON", "Observation: subject missing".
    reason = models.CharField(max_length=300)
    payload = EncryptedTextField()
    # Set when the item only waits for its patient ("Patient/<source id>") to arrive;
    # each later import re-processes the waiting items it resolves.
    waiting_for = models.CharField(max_length=80, blank=True)
    status = models.CharField(
        max_length=12, choices=QuarantineStatus.choices, default=QuarantineStatus.OPEN
    )
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="quarantine_status_idx")]


class MatchStatus(models.TextChoices):
    OPEN = "open", "Open"
    MERGED = "merged", "Merged"
    DISTINCT = "distinct", "Different people"


class MatchReview(models.Model):
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    # The record made from the incoming data, and the existing one it may duplicate.
    incoming = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    # What matched and what did not, as field names ("birth date, family name; phone differs").
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=MatchStatus.choices, default=MatchStatus.OPEN)
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        "security.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["incoming", "candidate"], name="match_review_pair")
        ]


class Hl7Status(models.TextChoices):
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected (AR)"
    ERROR = "error", "Error (AE)"


class Hl7Message(models.Model):
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="hl7_messages")
    # MSH-3^MSH-4 of the sender and MSH-10: a repeat of both is the same message.
    sender = models.CharField(max_length=200)
    control_id = models.CharField(max_length=200)
    message_type = models.CharField(max_length=16)  # ADT^A01, SIU^S12...
    status = models.CharField(max_length=10, choices=Hl7Status.choices)
    # The ACK careloop answered with (MSH, MSA and ERR: control ids and codes, no PHI).
    ack = models.TextField()
    received_at = models.DateTimeField()
    quarantine = models.ForeignKey(
        QuarantineItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["sender", "control_id"], name="hl7_message_once")
        ]
