"""The patient's consents as FHIR R4 Consent resources in a collection Bundle.

Only coded values and ids leave here: the typed signature, the proxy's name and the
note stay in careloop (the signer is the patient or "a proxy", by reference).
"""

from __future__ import annotations

import datetime
from typing import Any

from careloop.consent.models import ConsentKind, ConsentRecord, ConsentStatus

LOINC = "http://loinc.org"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
DOCUMENT_SYSTEM = "urn:careloop:consent-document"

_STATUS = {
    ConsentStatus.GRANTED: "active",
    ConsentStatus.DENIED: "rejected",
    ConsentStatus.REVOKED: "inactive",
    ConsentStatus.EXPIRED: "inactive",
}
_SCOPE = {
    ConsentKind.TREATMENT: ("treatment", "Treatment"),
    ConsentKind.TELEHEALTH: ("treatment", "Treatment"),
    ConsentKind.RESEARCH: ("research", "Research"),
}
_PRIVACY_SCOPE = ("patient-privacy", "Privacy Consent")
# LOINC document codes: the NPP acknowledgement and release of information have their
# own; everything else is a consent document.
_CATEGORY = {
    ConsentKind.NPP_ACK: ("57016-8", "Privacy policy acknowledgment Document"),
    ConsentKind.THIRD_PARTY: ("64292-6", "Release of information consent"),
}
_CONSENT_DOCUMENT = ("59284-0", "Consent Document")


def _instant(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def consent_resource(record: ConsentRecord) -> dict[str, Any]:
    kind, status = ConsentKind(record.kind), ConsentStatus(record.status)
    scope_code, scope_display = _SCOPE.get(kind, _PRIVACY_SCOPE)
    category_code, category_display = _CATEGORY.get(kind, _CONSENT_DOCUMENT)
    permit = status == ConsentStatus.GRANTED
    period: dict[str, str] = {"start": _instant(record.period_start)}
    if record.period_end is not None:
        period["end"] = _instant(record.period_end)
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(record.id),
        "status": _STATUS[status],
        "scope": {
            "coding": [{"system": SCOPE_SYSTEM, "code": scope_code, "display": scope_display}]
        },
        "category": [
            {"coding": [{"system": LOINC, "code": category_code, "display": category_display}]},
            {"text": kind.label},
        ],
        "patient": {"reference": f"Patient/{record.patient_id}"},
        "dateTime": _instant(record.captured_at),
        "performer": [
            {"display": "Patient's proxy"}
            if record.signer_is_proxy
            else {"reference": f"Patient/{record.patient_id}"}
        ],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN" if permit else "OPTOUT"}]},
        "provision": {"type": "permit" if permit else "deny", "period": period},
    }
    if record.scope:
        resource["provision"]["purpose"] = [
            {"system": "urn:careloop:purpose", "code": record.scope}
        ]
    if record.document_version:
        label = f"{record.kind}|{record.document_version}"
        resource["policy"] = [{"uri": f"{DOCUMENT_SYSTEM}:{record.kind}:{record.document_version}"}]
        resource["sourceReference"] = {
            "identifier": {"system": DOCUMENT_SYSTEM, "value": label},
            "display": f"{kind.label}, version {record.document_version}",
        }
    return resource


def consent_bundle(records: list[ConsentRecord]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": consent_resource(record)} for record in records],
    }
