"""careloop's FHIR R4 API: registered clients, their access tokens, search cursors, exports.

Nothing here holds PHI of class I. A client is a system (a data warehouse, a partner)
registered by an operator with its public keys; it acts with one staff role of the
permission table. Access tokens and client-assertion ids are kept only as digests or
ids. A search cursor keeps the *compiled* criteria (blind-index digests, codes, dates),
never the text a client searched for, so a paging link can be a bare row id.
"""

from __future__ import annotations

import uuid

from django.db import models


class Client(models.Model):
    """A system allowed to call the FHIR API with SMART Backend Services credentials."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    # The OAuth client_id: random, not secret (it is the `iss` of the client's assertions).
    client_id = models.CharField(max_length=64, unique=True)
    # The client's public keys (a JWKS document); its private keys never reach careloop.
    jwks = models.JSONField()
    # SMART scopes the client may ask for, e.g. ["system/Patient.read", "system/*.read"].
    scopes = models.JSONField(default=list)
    # The staff role (careloop.security.models.Role) whose row of the permission table
    # bounds everything the client may do, whatever its scopes say.
    role = models.CharField(max_length=32)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"FHIR client {self.name}"


class AccessToken(models.Model):
    """A bearer token issued at the token endpoint; only its SHA-256 is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="tokens")
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("issued_at")),
                name="fhirapi_token_expires_after_issue",
            ),
        ]


class UsedAssertion(models.Model):
    """A client assertion's `jti`, kept until the assertion expires, to refuse replays."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    jti = models.CharField(max_length=200)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            # why: the unique row is the replay check, race-free across web processes.
            models.UniqueConstraint(fields=["client", "jti"], name="fhirapi_assertion_once"),
        ]


class SearchCursor(models.Model):
    """One page of a search still to be fetched: what a `next` link points at."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    resource_type = models.CharField(max_length=40)
    # [[param, modifier, compiled value], ...]: digests, codes and dates only.
    criteria = models.JSONField(default=list)
    includes = models.JSONField(default=list)
    count = models.PositiveSmallIntegerField()
    # The primary key of the last resource on the previous page (keyset paging).
    after = models.CharField(max_length=64)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["expires_at"]


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ExportJob(models.Model):
    """A Bulk Data `$export` a client kicked off; the durable state of the work.

    The worker claims a queued job with a lease (`lease_until`); the export sweep takes
    up a queued job, or a running one whose lease expired, so a lost task or a dead
    worker only delays it. `files` is the manifest's output list once complete.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="exports")
    # "Patient" for /Patient/$export, or the Group id ("location-<uuid>", "provider-<uuid>").
    group = models.CharField(max_length=80, blank=True)
    types = models.JSONField(default=list)
    since = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=12, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    request_url = models.CharField(max_length=500)
    transaction_time = models.DateTimeField()
    files = models.JSONField(default=list)
    progress = models.CharField(max_length=80, blank=True)
    error = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "lease_until"], name="fhirapi_export_due_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ExportStatus.values),
                name="fhirapi_export_status_known",
            ),
        ]
