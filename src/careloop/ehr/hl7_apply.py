"""What an HL7 v2 message does to careloop, and the answer the sender gets.

`hl7_receive` is the one entry point (the MLLP server calls it per message): it
parses, refuses what careloop does not read (AR), answers a repeated MSH-10 from the
same sender with the ACK stored the first time (writing nothing), and otherwise applies
the message and records it in one transaction, so AA is only ever sent for a committed
message. A message that cannot be applied is rolled back whole, quarantined (payload
encrypted) and answered AE; every message leaves one `hl7.receive` audit event.

ADT events go through the one identity path every feed uses (`patient_upsert`);
A01/A03 record an inpatient encounter (a clinical fact), which is how outreach knows
to pause (docs/decisions.md); A40 merges; SIU events are in careloop.ehr.hl7_siu.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, InterfaceError, OperationalError, transaction

from careloop.clinical.models import ClinicalFact, FactElement, FactKind
from careloop.consent.baa import NoActiveBaa, baa_require
from careloop.core.clock import now
from careloop.ehr.hl7 import (
    Hl7Error,
    Message,
    ack_build,
    hl7_datetime,
    message_parse,
    message_text,
    version_check,
)
from careloop.ehr.hl7_pid import patient_from_pid, source_patient_id
from careloop.ehr.hl7_siu import SIU_EVENTS, siu_apply
from careloop.ehr.identity import patient_upsert
from careloop.ehr.models import (
    Hl7Message,
    Hl7Status,
    QuarantineItem,
    Source,
    SourceKind,
    SourceRecord,
)
from careloop.patients.merge import patient_merge_from_feed
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.models import AuditEvent

logger = logging.getLogger(__name__)

ADT_PATIENT_EVENTS = frozenset({"A01", "A03", "A04", "A08", "A28", "A31", "A40"})
ENCOUNTER_CLASS_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# PV1-2 patient class (HL7 table 0004) -> (v3 ActCode, fact category). Outreach reads
# an in-progress "inpatient" encounter as "pause routine messages".
PATIENT_CLASS = {
    "I": ("IMP", "inpatient"),
    "E": ("EMER", "emergency"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "preadmit"),
    "R": ("IMP", "inpatient"),
}
Applier = Callable[[Source, Message], uuid.UUID | None]


def hl7_receive(*, source: Source, data: bytes) -> bytes:
    """The ACK (bytes, the message's own delimiters) for one received message.

    Database outages (OperationalError, InterfaceError) propagate: no ACK is sent, the
    connection closes, and the sender sends again, as MLLP senders do.
    """
    at = now()
    message: Message | None = None
    try:
        message = message_parse(data)
        version_check(message)
        applier = _applier(message)
    except Hl7Error as error:
        return _refuse(source=source, message=message, data=data, error=error, at=at)
    stored = _stored_ack(source=source, message=message)
    if stored is not None:
        return stored
    try:
        with transaction.atomic():
            patient_id = applier(source, message)
            ack = ack_build(message=message, code="AA", at=at)
            _record(source=source, message=message, status=Hl7Status.APPLIED, ack=ack, at=at)
            _audit(source=source, message=message, patient_id=patient_id, outcome="success")
        return ack.encode()
    except Hl7Error as error:
        return _refuse(source=source, message=message, data=data, error=error, at=at)
    except (OperationalError, InterfaceError):
        raise
    except IntegrityError:
        # Most often the same message on two connections at once: the other one won.
        stored = _stored_ack(source=source, message=message)
        if stored is not None:
            return stored
        return _failed(source=source, message=message, data=data, at=at, kind="IntegrityError")
    except Exception as error:  # noqa: BLE001 - every other failure is quarantined, not lost
        return _failed(source=source, message=message, data=data, at=at, kind=type(error).__name__)


class Hl7SourceError(ValueError):
    """The source cannot take an HL7 feed; the message says what to fix (no PHI)."""


def hl7_source_ensure(*, name: str, vendor_name: str = "") -> Source:
    """The HL7 source `name`, registered (kind hl7) if new, with a BAA in force.

    `vendor_name` is required to register a source and must match an existing one's.
    """
    source = Source.objects.select_related("vendor").filter(name=name).first()
    if source is not None and source.kind != SourceKind.HL7:
        raise Hl7SourceError(f"source {name!r} is a {source.kind} source, not an HL7 feed")
    if source is None and not vendor_name:
        raise Hl7SourceError(
            f"there is no source {name!r}; pass --vendor VENDOR to register it "
            "(the EHR vendor whose BAA covers the feed)"
        )
    if source is not None and source.vendor is None:
        raise Hl7SourceError(f"source {name!r} names no vendor, so no BAA covers it")
    chosen = vendor_name or (source.vendor.name if source and source.vendor else "")
    if source is not None and source.vendor is not None and chosen != source.vendor.name:
        raise Hl7SourceError(f"source {name!r} is registered with another vendor")
    try:
        vendor = baa_require(vendor_name=chosen, at=now())
    except NoActiveBaa as error:
        raise Hl7SourceError(str(error)) from None
    if source is not None:
        return source
    with transaction.atomic():
        source = Source.objects.create(
            name=name, kind=SourceKind.HL7, vendor=vendor, created_at=now()
        )
        audit_record(
            action="ehr.source_change",
            actor=console_actor(),
            resource_type="ehr_source",
            resource_id=str(source.pk),
            fields=("name", "kind", "vendor"),
        )
    return source


def hl7_oversized(*, source: Source, head: bytes, limit: int) -> bytes:
    """AR for a message over the size cap, answered from its first bytes (its MSH).

    It was not read whole, so there is nothing to quarantine or to remember: the
    sender sees AR, the audit log a failure, and a resend after the cap is raised works.
    """
    message: Message | None = None
    with contextlib.suppress(Hl7Error):
        message = message_parse(head.split(b"\r")[0].split(b"\n")[0])
    error = Hl7Error(f"the message is over the {limit}-byte limit", code=104, ack="AR")
    _audit(source=source, message=message, patient_id=None, outcome="failure")
    return ack_build(message=message, code="AR", at=now(), error=error).encode()


@dataclass(frozen=True, slots=True)
class Hl7Handler:
    """What the MLLP server does with what it reads from `source`."""

    source: Source

    def message(self, data: bytes) -> bytes:
        return hl7_receive(source=self.source, data=data)

    def oversized(self, head: bytes, limit: int) -> bytes:
        return hl7_oversized(source=self.source, head=head, limit=limit)


def _applier(message: Message) -> Applier:
    kind, event = message.message_type.split("^")
    if kind == "ADT" and event in ADT_PATIENT_EVENTS:
        return adt_apply
    if kind == "SIU" and event in SIU_EVENTS:
        return siu_apply
    if kind in {"ADT", "SIU"}:
        raise Hl7Error(
            f"{kind} event {event[:3]} is not one careloop reads",
            code=201,
            ack="AR",
            location="MSH-9",
        )
    raise Hl7Error("careloop reads ADT and SIU messages only", code=200, ack="AR", location="MSH-9")


def _stored_ack(*, source: Source, message: Message) -> bytes | None:
    found = (
        Hl7Message.objects.filter(sender=message.sender[:200], control_id=message.control_id[:200])
        .values_list("ack", flat=True)
        .first()
    )
    if found is None:
        return None
    _audit(source=source, message=message, patient_id=None, outcome="success", repeat=True)
    return found.encode()


def _record(
    *,
    source: Source,
    message: Message,
    status: Hl7Status,
    ack: str,
    at: datetime.datetime,
    quarantine: QuarantineItem | None = None,
) -> None:
    Hl7Message.objects.create(
        source=source,
        sender=message.sender[:200],
        control_id=message.control_id[:200],
        message_type=message.message_type[:16],
        status=status,
        ack=ack,
        received_at=at,
        quarantine=quarantine,
    )


def _audit(
    *,
    source: Source,
    message: Message | None,
    patient_id: uuid.UUID | None,
    outcome: str,
    repeat: bool = False,
) -> None:
    audit_record(
        action="hl7.receive",
        actor_kind=AuditEvent.ActorKind.INTEGRATION,
        actor_id=f"hl7:{source.name}",
        patient_id=patient_id,
        resource_type=message.message_type if message is not None else "",
        resource_id=message.control_id[:200] if message is not None else "",
        fields=("repeat",) if repeat else (),
        outcome=outcome,
    )


def _failed(
    *, source: Source, message: Message, data: bytes, at: datetime.datetime, kind: str
) -> bytes:
    # The exception's text may quote the message; only its class is logged and kept.
    logger.error("hl7 %s from %s failed: %s", message.control_id[:40], source.name, kind)
    error = Hl7Error(f"application error ({kind})", code=207)
    return _refuse(source=source, message=message, data=data, error=error, at=at)


def _refuse(
    *,
    source: Source,
    message: Message | None,
    data: bytes,
    error: Hl7Error,
    at: datetime.datetime,
) -> bytes:
    """Quarantine the message, remember the AE/AR sent for it, and return that ACK."""
    ack = ack_build(message=message, code=error.ack, at=at, error=error)
    known = message is not None and bool(message.control_id)
    origin = f"{message.sender} {message.control_id}" if known and message else "unknown sender"
    try:
        with transaction.atomic():
            item = QuarantineItem.objects.create(
                source=source,
                format="hl7",
                origin=origin[:300],
                resource_type=message.message_type[:32] if message is not None else "",
                reason=f"{error.code} {error.reason}"[:300],
                payload=message_text(data),
                created_at=at,
            )
            if known and message is not None:
                status = Hl7Status.REJECTED if error.ack == "AR" else Hl7Status.ERROR
                _record(
                    source=source, message=message, status=status, ack=ack, at=at, quarantine=item
                )
            _audit(source=source, message=message, patient_id=None, outcome="failure")
    except IntegrityError:
        if message is not None:
            stored = _stored_ack(source=source, message=message)
            if stored is not None:
                return stored
        raise
    logger.warning(
        "hl7 %s from %s refused: %s %s",
        message.control_id[:40] if message is not None else "-",
        source.name,
        error.ack,
        error.code,
    )
    return ack.encode()


# --- ADT -------------------------------------------------------------------------------


def adt_apply(source: Source, message: Message) -> uuid.UUID:
    """Register or update the patient in PID; A01/A03 admit and discharge, A40 merges."""
    event = message.message_type.split("^")[1]
    pid = message.require("PID")
    source_id, incoming = patient_from_pid(pid, source=source)
    result = patient_upsert(source=source, source_patient_id=source_id, incoming=incoming)
    patient = Patient.objects.get(pk=result.patient_id)
    if event == "A01":
        _admit(source=source, message=message, patient=patient, source_patient_id=source_id)
    elif event == "A03":
        _discharge(source=source, message=message, patient=patient)
    elif event == "A40":
        _merge(source=source, message=message, survivor=patient)
    return patient.pk


def _visit_number(message: Message) -> str:
    """PV1-19, the sender's id for the visit ("" when it sends none)."""
    pv1 = message.first("PV1")
    return pv1.get(19)[:64] if pv1 is not None else ""


def _admit(*, source: Source, message: Message, patient: Patient, source_patient_id: str) -> None:
    pv1 = message.require("PV1")
    code, category = PATIENT_CLASS.get(pv1.get(2).upper(), ("IMP", "inpatient"))
    start = hl7_datetime(pv1.get(44), location="PV1-44") or _event_time(message)
    # Without a visit number, one admission per patient and admission time.
    encounter_id = _visit_number(message) or f"{source_patient_id}@{start:%Y%m%d%H%M%S}"[:64]
    ClinicalFact.objects.update_or_create(
        source_system=source.name,
        resource_type="Encounter",
        source_id=encounter_id,
        part=0,
        defaults={
            "patient": patient,
            "kind": FactKind.ENCOUNTER,
            "element": FactElement.CLASS,
            "system": ENCOUNTER_CLASS_SYSTEM,
            "code": code,
            "category": category,
            "status": "in-progress",
            "effective_start": start,
            "effective_end": None,
            "source_updated": _event_time(message),
            "subject_ref": source_patient_id[:64],
        },
    )
    timeline_add(
        patient=patient,
        kind=TimelineKind.VISIT,
        summary=f"Admitted ({category}), reported by the EHR",
        at=start,
        ref_type="clinical_fact",
        ref_id=f"Encounter/{encounter_id}",
    )


def _discharge(*, source: Source, message: Message, patient: Patient) -> None:
    """Finish the admission PV1-19 names, or every open inpatient stay of the patient
    from this source when the sender gives no visit number."""
    pv1 = message.first("PV1")
    end = (hl7_datetime(pv1.get(45), location="PV1-45") if pv1 else None) or _event_time(message)
    encounter_id = _visit_number(message)
    open_stays = ClinicalFact.objects.filter(
        source_system=source.name,
        resource_type="Encounter",
        patient=patient,
        status="in-progress",
    )
    if encounter_id:
        open_stays = open_stays.filter(source_id=encounter_id)
    closed = 0
    for fact in open_stays:
        fact.status = "finished"
        fact.effective_end = max(end, fact.effective_start) if fact.effective_start else end
        fact.source_updated = _event_time(message)
        fact.save(update_fields=["status", "effective_end", "source_updated"])
        closed += 1
    timeline_add(
        patient=patient,
        kind=TimelineKind.VISIT,
        summary="Discharged, reported by the EHR" if closed else "Discharge reported by the EHR",
        at=end,
        ref_type="clinical_fact",
        ref_id=f"Encounter/{encounter_id}" if encounter_id else "",
    )


def _event_time(message: Message) -> datetime.datetime:
    """EVN-2 (when the event was recorded), else MSH-7, else now."""
    evn = message.first("EVN")
    recorded = hl7_datetime(evn.get(2), location="EVN-2") if evn is not None else None
    return recorded or hl7_datetime(message.header.get(7), location="MSH-7") or now()


def _merge(*, source: Source, message: Message, survivor: Patient) -> None:
    """A40: the record MRG-1 names is folded into the one PID names. When careloop has
    never heard of the prior id from this source, only the survivor's identity is kept."""
    mrg = message.require("MRG")
    prior_id = source_patient_id(mrg.repeats(1), location="MRG-1")
    prior = (
        SourceRecord.objects.filter(source=source, resource_type="Patient", resource_id=prior_id)
        .values_list("patient_id", flat=True)
        .first()
    )
    if prior is None:
        return
    root = Patient.objects.get(pk=prior)
    while root.merged_into_id is not None:
        root = Patient.objects.get(pk=root.merged_into_id)
    # Later messages under the prior id follow `merged_into` to the survivor (identity).
    if root.pk != survivor.pk:
        patient_merge_from_feed(
            feed=f"hl7:{source.name}", survivor_id=survivor.pk, duplicate_id=root.pk
        )
