"""Write paths for staff (and later the portal): e-signature, verbal/paper, revocation.

Each checks Resource.CONSENT write for the actor and the patient, then appends through
the one ledger service (careloop.consent.ledger.consent_record), which writes the
integrity hash, the audit event and the timeline entry in the same transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest

from careloop.consent.ledger import consent_record
from careloop.consent.models import (
    CaptureMethod,
    ConsentDocument,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
)
from careloop.patients.models import Patient
from careloop.security.permissions import Actor, Op, Resource, require

ESIGN_METHODS = frozenset({CaptureMethod.STAFF_ESIGNATURE, CaptureMethod.PORTAL_ESIGNATURE})
# What staff may record by hand: the e-signature has its own path, keywords come from
# the SMS handler and imports from the EHR.
STAFF_RECORDED_METHODS = (CaptureMethod.VERBAL, CaptureMethod.PAPER)


class ConsentError(ValueError):
    """A consent that cannot be recorded as given; the message says what is missing."""


@transaction.atomic
def consent_sign(
    *,
    actor: Actor,
    patient: Patient,
    document: ConsentDocument,
    signer_name: str,
    signer_is_proxy: bool,
    proxy_authority: str = "",
    source_ip: str | None,
    method: CaptureMethod = CaptureMethod.STAFF_ESIGNATURE,
    request: HttpRequest | None = None,
) -> ConsentRecord:
    """Record the signer's agreement to `document`: a grant of its kind.

    The typed full name is the signature; for a proxy it is the proxy's name and
    `proxy_authority` says under what authority they sign.
    """
    user = require(actor, Op.WRITE, Resource.CONSENT, request=request, patient_id=patient.pk)
    if method not in ESIGN_METHODS:
        raise ConsentError("an e-signature is captured in the portal or with staff")
    name = " ".join(signer_name.split())
    if not name:
        raise ConsentError("type the signer's full name to sign")
    authority = " ".join(proxy_authority.split())
    if signer_is_proxy and not authority:
        raise ConsentError("say under what authority the proxy signs")
    return consent_record(
        patient=patient,
        kind=ConsentKind(document.kind),
        status=ConsentStatus.GRANTED,
        capture_method=method,
        captured_by=user,
        source_ip=source_ip,
        document=document,
        signature_name=name,
        signer_is_proxy=signer_is_proxy,
        proxy_name=name if signer_is_proxy else None,
        proxy_authority=authority if signer_is_proxy else None,
        request=request,
    )


@transaction.atomic
def consent_capture(
    *,
    actor: Actor,
    patient: Patient,
    kind: ConsentKind,
    status: ConsentStatus,
    method: CaptureMethod,
    note: str = "",
    scope: str = "",
    document: ConsentDocument | None = None,
    source_ip: str | None = None,
    request: HttpRequest | None = None,
) -> ConsentRecord:
    """Record a verbal or paper answer, or a revocation, taken by staff.

    A revocation is a new record with status revoked; nothing earlier is changed.
    """
    user = require(actor, Op.WRITE, Resource.CONSENT, request=request, patient_id=patient.pk)
    if method not in STAFF_RECORDED_METHODS:
        raise ConsentError("staff record consents given verbally or on paper")
    return consent_record(
        patient=patient,
        kind=kind,
        status=status,
        capture_method=method,
        scope=scope,
        captured_by=user,
        source_ip=source_ip,
        document=document,
        note=note.strip() or None,
        request=request,
    )
