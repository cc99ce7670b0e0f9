"""Audit events out: FHIR R4B AuditEvent (one JSON object per line) and CSV.

The FHIR type is the DICOM audit event type (DCM) where one fits, or "rest" for API
and FHIR calls, with the RESTful interaction as subtype; every event also carries its
careloop action as a subtype, so nothing is lost in the mapping.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from careloop.security.models import AuditEvent

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
REST = "http://hl7.org/fhir/restful-interaction"
CARELOOP_ACTION = "urn:careloop:audit-action"
CARELOOP_USER = "urn:careloop:user"
CARELOOP_CLIENT = "urn:careloop:client"

_DCM_NAMES = {
    "110100": "Application Activity",
    "110101": "Audit Log Used",
    "110106": "Export",
    "110110": "Patient Record",
    "110112": "Query",
    "110113": "Security Alert",
    "110114": "User Authentication",
    "110122": "Login",
    "110123": "Logout",
    "110127": "Emergency Override Started",
    "110129": "Security Configuration",
    "110136": "Security Roles Changed",
    "110137": "User Security Attributes Changed",
}

# action -> (type system, type code, DICOM/REST subtype code or "", FHIR action code)
_MAPPING: dict[str, tuple[str, str, str, str]] = {
    "auth.login": (DCM, "110114", "110122", "E"),
    "auth.login_failed": (DCM, "110114", "110122", "E"),
    "auth.logout": (DCM, "110114", "110123", "E"),
    "auth.session_expired": (DCM, "110114", "110123", "E"),
    "auth.lockout": (DCM, "110113", "110137", "E"),
    "auth.mfa_enrolled": (DCM, "110113", "110137", "U"),
    "auth.mfa_failed": (DCM, "110114", "110122", "E"),
    "auth.reauth": (DCM, "110114", "110122", "E"),
    "user.create": (DCM, "110113", "110137", "C"),
    "user.disable": (DCM, "110113", "110137", "U"),
    "user.role_change": (DCM, "110113", "110136", "U"),
    "token.create": (DCM, "110113", "110137", "C"),
    "token.revoke": (DCM, "110113", "110137", "D"),
    "token.denied": (DCM, "110114", "110122", "E"),
    "patient.list": (DCM, "110112", "", "R"),
    "patient.search": (DCM, "110112", "", "E"),
    "patient.view": (DCM, "110110", "", "R"),
    "patient.create": (DCM, "110110", "", "C"),
    "patient.update": (DCM, "110110", "", "U"),
    "export.csv": (DCM, "110106", "", "E"),
    "export.ndjson": (DCM, "110106", "", "E"),
    "access.denied": (DCM, "110113", "", "E"),
    "access.break_glass": (DCM, "110113", "110127", "E"),
    "audit.search": (DCM, "110101", "", "R"),
    "audit.export": (DCM, "110106", "", "E"),
    "audit.verify": (DCM, "110101", "", "E"),
    "config.change": (DCM, "110113", "110129", "U"),
    "keys.rotate": (DCM, "110113", "110129", "U"),
    "api.read": (EVENT_TYPE, "rest", "read", "R"),
    "api.write": (EVENT_TYPE, "rest", "update", "U"),
    "fhir.read": (EVENT_TYPE, "rest", "read", "R"),
    "fhir.search": (EVENT_TYPE, "rest", "search-type", "E"),
    "fhir.export": (DCM, "110106", "", "E"),
    "fhir.token": (DCM, "110114", "110122", "E"),
    "fhir.client": (DCM, "110113", "110137", "U"),
}
_OUTCOME = {"success": "0", "failure": "8", "denied": "4"}


def _coding(system: str, code: str) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if system == DCM:
        coding["display"] = _DCM_NAMES[code]
    elif system == EVENT_TYPE:
        coding["display"] = "RESTful Operation"
    return coding


def _agent(event: AuditEvent) -> dict[str, Any]:
    who: dict[str, Any]
    kind = event.actor_kind
    if kind in (AuditEvent.ActorKind.USER, AuditEvent.ActorKind.PATIENT):
        who = {"identifier": {"system": CARELOOP_USER, "value": event.actor_id}}
        if event.actor_label:
            who["display"] = event.actor_label
    elif kind == AuditEvent.ActorKind.INTEGRATION:
        who = {"identifier": {"system": CARELOOP_CLIENT, "value": event.actor_id}}
    else:
        who = {"display": event.actor_id or str(AuditEvent.ActorKind(kind).label)}
    agent: dict[str, Any] = {
        "type": {"coding": [_agent_type(kind)]},
        "who": who,
        "requestor": kind != AuditEvent.ActorKind.SYSTEM,
    }
    if event.source_ip:
        agent["network"] = {"address": event.source_ip, "type": "2"}
    return agent


def _agent_type(kind: str) -> dict[str, str]:
    if kind in (AuditEvent.ActorKind.SYSTEM, AuditEvent.ActorKind.INTEGRATION):
        return {"system": DCM, "code": "110150", "display": "Application"}
    return {
        "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
        "code": "humanuser",
        "display": "human user",
    }


def _entities(event: AuditEvent) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if event.patient_id is not None:
        entities.append(
            {
                "what": {"reference": f"Patient/{event.patient_id}"},
                "type": {
                    "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "code": "1",
                    "display": "Person",
                },
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            }
        )
    if event.resource_type:
        entity: dict[str, Any] = {
            "what": {"identifier": {"system": f"urn:careloop:{event.resource_type}"}},
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": "2",
                "display": "System Object",
            },
        }
        if event.resource_id:
            entity["what"]["identifier"]["value"] = event.resource_id
        if event.fields:
            entity["detail"] = [{"type": "fields", "valueString": ",".join(event.fields)}]
        entities.append(entity)
    return entities


def fhir_audit_event(event: AuditEvent) -> dict[str, Any]:
    """One event as a FHIR R4B AuditEvent resource (a plain dict, ready for JSON)."""
    system, code, subtype, action = _MAPPING.get(event.action, (DCM, "110100", "", "E"))
    subtypes = [_coding(REST if system == EVENT_TYPE else DCM, subtype)] if subtype else []
    subtypes.append({"system": CARELOOP_ACTION, "code": event.action})
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.id),
        "type": _coding(system, code),
        "subtype": subtypes,
        "action": action,
        "recorded": event.at.isoformat(timespec="microseconds"),
        "outcome": _OUTCOME[event.outcome],
        "agent": [_agent(event)],
        "source": {
            "observer": {"display": "careloop"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
    }
    entities = _entities(event)
    if entities:
        resource["entity"] = entities
    return resource


def ndjson_lines(events: Iterable[AuditEvent]) -> Iterator[bytes]:
    for event in events:
        yield orjson.dumps(fhir_audit_event(event)) + b"\n"


CSV_HEADER = (
    "seq",
    "id",
    "recorded",
    "actor_kind",
    "actor_id",
    "username",
    "source_ip",
    "patient_id",
    "action",
    "resource_type",
    "resource_id",
    "fields",
    "outcome",
    "hash",
)


def _cell(value: str) -> str:
    # A cell a spreadsheet would run as a formula is kept as text (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_HEADER)
    yield flush()
    for event in events:
        row = (
            str(event.seq) if event.seq is not None else "",
            str(event.id),
            event.at.isoformat(timespec="microseconds"),
            event.actor_kind,
            event.actor_id,
            event.actor_label,
            event.source_ip or "",
            str(event.patient_id or ""),
            event.action,
            event.resource_type,
            event.resource_id,
            ";".join(event.fields),
            event.outcome,
            bytes(event.hash).hex() if event.hash is not None else "",
        )
        writer.writerow([_cell(value) for value in row])
        yield flush()
