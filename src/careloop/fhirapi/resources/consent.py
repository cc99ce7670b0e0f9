"""Consent, from the consent ledger (the mapping is careloop.consent.fhir's)."""

from __future__ import annotations

from typing import Any

from careloop.consent.fhir import consent_resource
from careloop.consent.models import ConsentRecord
from careloop.fhirapi.registry import Readable, instant, register
from careloop.security.permissions import Resource


def _consent(record: ConsentRecord, readable: Readable) -> dict[str, Any]:
    resource = consent_resource(record)
    # Ledger records are never edited: the time careloop wrote one is its last update.
    return {**resource, "meta": {"lastUpdated": instant(record.recorded_at)}}


PROVIDER = register(
    type="Consent",
    resource=Resource.CONSENT,
    rows=lambda: ConsentRecord.objects.all(),
    serialize=_consent,
    params=[],
    patient_column="patient_id",
    updated_column="recorded_at",
)
