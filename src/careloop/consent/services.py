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
from careloop.core.errors import PermissionDenied
from careloop.patients.models import Patient
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Actor, Op, Resource, require

ESIGN_METHODS = frozenset({CaptureMethod.STAFF_ESIGNATURE, CaptureMethod.PORTAL_ESIGNATURE})
# What a patient records themselves in the portal: a signature (or a signed revocation)
# and the preference centre. Only a portal account may use these, only for a record the
# portal lets it act for; staff may not (their own methods say a person took it down).
PORTAL_METHODS = frozenset({CaptureMethod.PORTAL_ESIGNATURE, CaptureMethod.PORTAL_PREFERENCES})
# Kinds a patient may revoke from the portal (docs/portal-consents.md). Communication,
# marketing, telehealth, research and third-party sharing are permissions the patient
# may withdraw at any time (a HIPAA authorization is revocable in writing, 45 CFR
# 164.508(b)(5)). The Notice of Privacy Practices acknowledgement records receipt of a
# notice, which cannot be undone; withdrawing consent to treatment changes the care
# itself, so it is a conversation with the care team, recorded by staff.
REVOCABLE_KINDS = frozenset(
    {
        ConsentKind.SMS,
        ConsentKind.EMAIL,
        ConsentKind.VOICE,
        ConsentKind.PUSH,
        ConsentKind.MARKETING,
        ConsentKind.TELEHEALTH,
        ConsentKind.RESEARCH,
        ConsentKind.THIRD_PARTY,
    }
)
# What staff may record by hand: the e-signature has its own path, keywords come from
# the SMS handler and imports from the EHR.
STAFF_RECORDED_METHODS = (CaptureMethod.VERBAL, CaptureMethod.PAPER)


class ConsentError(ValueError):
    """A consent that cannot be recorded as given; the message says what is missing."""


def consent_writer(
    *,
    actor: Actor,
    patient: Patient,
    method: CaptureMethod,
    request: HttpRequest | None = None,
) -> User:
    """Who records a consent by `method`: staff by the permission table; a portal method
    only by a patient user for their own record or one they are a proxy for with the
    power to sign consents (careloop.portal.proxy: `may_sign_consents`). Also locks
    the patient row, so that two submissions of one form take turns and the second
    sees the first's record."""
    if method in PORTAL_METHODS:
        # Imported here: the portal imports the outbox, which imports consent.
        from careloop.portal.proxy import Power, proxy_may

        if not (
            isinstance(actor, User)
            and proxy_may(user=actor, patient_id=patient.pk, power=Power.SIGN_CONSENTS)
        ):
            audit_record(
                action="access.denied",
                request=request,
                actor=actor if isinstance(actor, User) else None,
                patient_id=patient.pk,
                resource_type="consent",
                fields=("write",),
                outcome="denied",
            )
            raise PermissionDenied("this portal account may not sign consents for this record")
        user = actor
    else:
        user = require(actor, Op.WRITE, Resource.CONSENT, request=request, patient_id=patient.pk)
    Patient.objects.select_for_update().filter(pk=patient.pk).first()
    return user


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
    if method not in ESIGN_METHODS:
        raise ConsentError("an e-signature is captured in the portal or with staff")
    user = consent_writer(actor=actor, patient=patient, method=method, request=request)
    name = " ".join(signer_name.split())
    if not name:
        raise ConsentError("type the signer's full name to sign")
    authority = " ".join(proxy_authority.split())
    if signer_is_proxy and not authority:
        raise ConsentError("say under what authority the proxy signs")
    if method == CaptureMethod.PORTAL_ESIGNATURE:
        # A form submitted twice (a double click, a resent POST) signs once: the second
        # finds the grant of this very text already newest, and returns it.
        newest = _newest(patient=patient, kind=ConsentKind(document.kind))
        if (
            newest is not None
            and newest.status == ConsentStatus.GRANTED
            and newest.document_sha256 == document.body_sha256
            and newest.period_end is None
        ):
            return newest
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


def _newest(*, patient: Patient, kind: ConsentKind, scope: str = "") -> ConsentRecord | None:
    return (
        ConsentRecord.objects.filter(patient=patient, kind=kind, scope=scope)
        .order_by("-captured_at", "-recorded_at")
        .first()
    )


@transaction.atomic
def consent_revoke_signed(
    *,
    actor: Actor,
    patient: Patient,
    kind: ConsentKind,
    signer_name: str,
    source_ip: str | None,
    request: HttpRequest | None = None,
) -> ConsentRecord:
    """The patient withdraws a consent in the portal, in writing: a new record with
    status revoked, signed with the typed name. Nothing earlier changes.

    Refused with the reason for a kind that is not revocable here (REVOCABLE_KINDS) or
    that is not granted now; a second submission of the same revocation returns the
    first's record.
    """
    method = CaptureMethod.PORTAL_ESIGNATURE
    user = consent_writer(actor=actor, patient=patient, method=method, request=request)
    if kind not in REVOCABLE_KINDS:
        raise ConsentError(f"{ConsentKind(kind).label} cannot be revoked in the portal")
    name = " ".join(signer_name.split())
    if not name:
        raise ConsentError("type your full name to sign the revocation")
    newest = _newest(patient=patient, kind=kind)
    if newest is not None and newest.status == ConsentStatus.REVOKED:
        return newest
    if newest is None or newest.status != ConsentStatus.GRANTED:
        raise ConsentError(
            f"{ConsentKind(kind).label} is not granted, so there is nothing to revoke"
        )
    return consent_record(
        patient=patient,
        kind=kind,
        status=ConsentStatus.REVOKED,
        capture_method=method,
        captured_by=user,
        source_ip=source_ip,
        document_version=newest.document_version,
        document_sha256=newest.document_sha256,
        signature_name=name,
        request=request,
    )
