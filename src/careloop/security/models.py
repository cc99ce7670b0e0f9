from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


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
