"""AuditEvent, from the audit log (the mapping is careloop.security.audit_export's).

Not part of `$export`: the audit log has its own export for the auditor.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Q

from careloop.fhirapi.params import SearchParam, date_param, token_param
from careloop.fhirapi.registry import Readable, register
from careloop.security import audit_export
from careloop.security.models import AuditEvent
from careloop.security.permissions import Resource

ACTION_CODES = ("C", "R", "U", "D", "E")


def _audit_event(event: AuditEvent, readable: Readable) -> dict[str, Any]:
    return audit_export.fhir_audit_event(event)


def _action_param() -> SearchParam:
    """`action` (C, R, U, D, E): the careloop actions the export maps to that code."""
    by_code: dict[str, list[str]] = defaultdict(list)
    mapped = list(audit_export._MAPPING)
    for action, (_, _, _, code) in audit_export._MAPPING.items():
        by_code[code].append(action)

    def compile_one(modifier: str, value: str) -> Any:
        return value.rpartition("|")[2]

    def apply_one(code: Any) -> Q:
        condition = Q(action__in=by_code.get(code, []))
        if code == "E":  # an unmapped action is exported as "E"
            condition |= ~Q(action__in=mapped)
        return condition

    return SearchParam("action", "token", compile_one, apply_one)


PROVIDER = register(
    type="AuditEvent",
    resource=Resource.AUDIT,
    rows=lambda: AuditEvent.objects.all(),
    serialize=_audit_event,
    params=[
        date_param("date", "at"),
        _action_param(),
        token_param("subtype", "action", system_column=None),
        token_param(
            "outcome", "outcome", mapping={"0": ["success"], "4": ["denied"], "8": ["failure"]}
        ),
    ],
    patient_column="patient_id",
    exportable=False,
)
