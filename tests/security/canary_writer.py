"""Run inside `careloop shell` by test_canary.py: write a canary into every class-I column.

Prints one JSON line: {"canaries": [...], "missing": [...]}. Rows come from the demo
practice where it has them and from the services that own the rest (consent notes,
audit reasons, break-the-glass reasons); `missing` names any encrypted column that got
no canary, so a new class-I field without coverage fails the test.
"""

from __future__ import annotations

import json
import secrets
import uuid

from careloop.consent.ledger import consent_record
from careloop.consent.models import CaptureMethod, ConsentKind, ConsentStatus
from careloop.patients.models import Patient
from careloop.security.audit import audit_record
from careloop.security.break_glass import break_glass_grant
from careloop.security.models import Role, User
from careloop.security.rotation import encrypted_columns

token = secrets.token_hex(6).upper()
canaries: list[str] = []


def canary(label: str) -> str:
    value = f"CANARY{token}{label.replace('.', '').replace('_', '')}"
    canaries.append(value)
    return value


patient = Patient.objects.order_by("created_at").first()
assert patient is not None  # noqa: S101 - a demo practice was loaded first
consent_record(
    patient=patient,
    kind=ConsentKind.SMS,
    status=ConsentStatus.REVOKED,
    capture_method=CaptureMethod.VERBAL,
    note=canary("consent.note"),
)
audit_record(
    action="access.break_glass",
    actor_kind="system",
    actor_id="canary",
    patient_id=patient.pk,
    reason=canary("audit.reason"),
)
clinician = User.objects.create_user(
    username=f"canary-{uuid.uuid4().hex[:8]}",
    password=secrets.token_urlsafe(16),
    role=Role.CLINICIAN,
)
break_glass_grant(
    actor=clinician, patient_id=patient.pk, reason=canary("breakglass.reason") + " in the ED"
)

missing = []
for model, fields in encrypted_columns():
    row = model._default_manager.order_by("pk").first()
    if row is None:
        missing.append(model._meta.label)
        continue
    changed = False
    for field in fields:
        current = getattr(row, field.attname)
        if isinstance(current, str) and current.startswith("CANARY"):
            continue
        setattr(row, field.attname, canary(f"{model._meta.model_name}{field.name}"))
        changed = True
    if changed:
        if model._meta.label == "security.AuditReason":
            continue  # written once by audit_record above; the audit table refuses UPDATE
        row.save()
print(json.dumps({"canaries": canaries, "missing": missing}))
