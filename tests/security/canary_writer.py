"""Run inside `careloop shell` by test_canary.py: write a canary into every class-I column.

Prints one JSON line: {"canaries": [...], "missing": [...]}. Rows come from the demo
practice where it has them and from the services that own the rest (consent notes,
audit reasons, break-the-glass reasons); `missing` names any encrypted column that got
no canary, so a new class-I field without coverage fails the test.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import tempfile
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from careloop.consent.ledger import consent_record
from careloop.consent.models import CaptureMethod, ConsentKind, ConsentStatus
from careloop.ehr.ingest import import_paths
from careloop.intake.builtin import CSAT_URL
from careloop.intake.builtin import SCALE as SURVEY_SCALE
from careloop.intake.models import Questionnaire
from careloop.intake.services import assignment_create, builtin_install, response_record
from careloop.outreach.inbound import inbound_receive
from careloop.outreach.outbox import Rendered, message_enqueue
from careloop.patients.household import RelationshipDetails, relationship_add
from careloop.patients.models import Patient
from careloop.patients.notes import note_add
from careloop.portal.attachments import Upload
from careloop.portal.insurance import insurance_card_upload
from careloop.portal.messaging import thread_start
from careloop.portal.models import PortalAccount
from careloop.portal.push_subscriptions import push_subscribe
from careloop.portal.threads import portal_message_deliver
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
# Relationship notes (with their first version) and a named caregiver, through the
# patients services that own them.
coordinator = User.objects.create_user(
    username=f"canary-{uuid.uuid4().hex[:8]}",
    password=secrets.token_urlsafe(16),
    role=Role.CARE_COORDINATOR,
)
note_add(actor=coordinator, patient_id=patient.pk, body=canary("note.body"))
relationship_add(
    actor=coordinator,
    patient_id=patient.pk,
    details=RelationshipDetails(
        code="caregiver",
        related_patient_id=None,
        related_name=canary("relationship.name"),
        may_schedule=True,
        may_message=False,
        may_view_record=False,
        may_sign_consents=False,
        period_start=datetime.date(2026, 1, 1),
    ),
)
# A quarantined import line (a payload kept encrypted for re-processing), through the
# FHIR import itself.
with tempfile.TemporaryDirectory() as folder:
    lines = Path(folder) / "Patient.ndjson"
    lines.write_text(canary("quarantineitem.payload") + "\n")
    import_paths([lines], source_name="canary-files")

# An outbox message (body, subject, HTML; its address is the patient's) and an inbound
# SMS for the staff inbox, through the outreach services that write them.
message_enqueue(
    patient=patient,
    channel="email",  # type: ignore[arg-type]
    purpose="appointment",  # type: ignore[arg-type]
    content_class="logistics",  # type: ignore[arg-type]
    template_id="canary",
    template_version=1,
    rendered=Rendered(
        body=canary("message.body"),
        subject=canary("message.subject"),
        body_html=f"<p>{canary('message.bodyhtml')}</p>",
    ),
)
inbound_receive(
    provider_message_id=f"SM{token}",
    from_address=canary("inboundmessage.fromaddress"),
    body=canary("inboundmessage.body"),
)

# A secure portal message (its thread and post) and a browser's push subscription,
# through the portal services that own them.
portal_message = message_enqueue(
    patient=patient,
    channel="portal",  # type: ignore[arg-type]
    purpose="care_reminder",  # type: ignore[arg-type]
    content_class="sensitive",  # type: ignore[arg-type]
    template_id="canary",
    template_version=1,
    rendered=Rendered(body=canary("threadmessage.body"), subject=canary("thread.subject")),
)
portal_message_deliver(message=portal_message)
browser_key = ec.generate_private_key(ec.SECP256R1()).public_key()
point = browser_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
push_subscribe(
    patient=patient,
    subscription={
        "endpoint": f"https://fcm.googleapis.com/fcm/send/{canary('pushsubscription.endpoint')}",
        "keys": {
            "p256dh": base64.urlsafe_b64encode(point).rstrip(b"=").decode(),
            "auth": base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode(),
        },
    },
)

# A thread the patient starts in the portal, with a file (its name, and its bytes in
# encrypted pieces), through the secure messaging service.
messaging_account = PortalAccount.objects.create(
    user=User.objects.create_user(
        username=f"canary-{uuid.uuid4().hex[:8]}", password=None, role=Role.PATIENT
    ),
    patient=patient,
    created_at=patient.created_at,
)
thread_start(
    account=messaging_account,
    inbox="care_team",
    subject=canary("thread.subject.portal"),
    body=canary("threadmessage.body.portal"),
    idempotency_key=token,
    uploads=[
        Upload(
            name=canary("threadattachment.filename") + ".txt",
            content=(canary("threadattachmentchunk.data") + "\n").encode(),
        )
    ],
)

# The front of an insurance card uploaded in the portal (its name, and its bytes in
# encrypted pieces), through the insurance card service.
insurance_card_upload(
    user=messaging_account.user,
    patient=patient,
    uploads={
        "front": Upload(
            name=canary("insurancecard.filename") + ".png",
            content=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + canary("insurancecardchunk").encode(),
        )
    },
    idempotency_key=token,
)

# A completed satisfaction survey whose comment is a canary, through the intake services.
builtin_install()
survey = assignment_create(questionnaire=Questionnaire.objects.get(url=CSAT_URL), patient=patient)
response_record(
    user=coordinator,
    assignment_id=survey.pk,
    patient=patient,
    answers={
        "satisfaction": [(SURVEY_SCALE, "4")],
        "comment": [canary("questionnaireresponse.comment")],
    },
    complete=True,
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
