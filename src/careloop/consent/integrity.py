"""The integrity hash of a consent record: SHA-256 over its canonical content.

The content is every column that says what was agreed, by whom, when and to which text
(the document hash and the typed signature included), as sorted-key JSON, so the same
record always hashes the same on every database. A record whose columns no longer
match its hash was changed after it was written.
"""

from __future__ import annotations

import datetime
import hashlib
import json

from careloop.consent.models import ConsentRecord


def _text(value: object) -> str | None:
    # Sealed fields read back as their plaintext through str(); None stays None.
    return None if value is None else str(value)


def _moment(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.astimezone(datetime.UTC).isoformat()


def consent_canonical(record: ConsentRecord) -> bytes:
    content = {
        "id": str(record.id),
        "patient": str(record.patient_id),
        "kind": record.kind,
        "scope": record.scope,
        "status": record.status,
        "period_start": _moment(record.period_start),
        "period_end": _moment(record.period_end),
        "capture_method": record.capture_method,
        "captured_at": _moment(record.captured_at),
        "recorded_at": _moment(record.recorded_at),
        "captured_by": None if record.captured_by_id is None else str(record.captured_by_id),
        "source_ip": record.source_ip,
        "document_version": record.document_version,
        "document_sha256": record.document_sha256,
        "signature_name": _text(record.signature_name),
        "signer_is_proxy": record.signer_is_proxy,
        "proxy_name": _text(record.proxy_name),
        "proxy_authority": _text(record.proxy_authority),
        "note": _text(record.note),
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def consent_integrity_hash(record: ConsentRecord) -> str:
    return hashlib.sha256(consent_canonical(record)).hexdigest()


def consent_verify(record: ConsentRecord) -> bool:
    """Does the record still match the hash written with it?"""
    return bool(record.integrity_hash) and record.integrity_hash == consent_integrity_hash(record)
