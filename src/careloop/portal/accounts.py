"""Portal accounts: self-registration against the record on file, one-time codes and
sign-in links, and the one patient a signed-in patient user is.

Registration never creates a patient. The visitor types a name, a birth date and an
e-mail address or mobile number; only when exactly one living, unmerged record has
that name and birth date *and* that contact on file (verified, usable on its channel)
does a 6-digit code go out, through the outbox, to that record's address. Every other
case gets the same answer as a match, so the page reveals nothing about who is a
patient. A code or a link is stored only as a keyed digest, works once and expires.

Sign-in reuses the staff machinery (careloop.security.auth): the lockout counts, the
django-otp devices, the session policy. A patient user is not signed in until every
factor they have is proved: the portal keeps the half-done sign-in in the session
(`PENDING_USER`), because the MFA gate treats any signed-in patient as verified.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import urlencode
from django_otp import login as otp_login

from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.core.clock import now
from careloop.outreach.outbox import ADDRESS_SOURCE, About, message_enqueue
from careloop.outreach.placeholders import render_context
from careloop.outreach.templates import template_for, template_render
from careloop.patients.models import ContactPoint, LifecycleStage, Patient
from careloop.portal.models import ChallengeKind, PortalAccount, PortalChallenge
from careloop.portal.proxy import Power, proxy_access_audit, proxy_grant, proxy_grants
from careloop.scheduling.models import HOLDING_STATUSES, Appointment
from careloop.security.audit import audit_record
from careloop.security.auth import mfa
from careloop.security.auth.lockout import (
    account_locked,
    login_failure_record,
    login_failures_clear,
)
from careloop.security.auth.signin import Outcome, PasswordOutcome
from careloop.security.fields import blind_value
from careloop.security.models import Role, User

CODE_TTL = datetime.timedelta(minutes=15)
LINK_TTL = datetime.timedelta(minutes=15)
# Wrong codes a registration may take before its code is dead (a fresh one is needed).
CODE_ATTEMPTS = 5
# The half-done sign-in: the user id and when the first factor passed.
PENDING_USER = "careloop.portal.pending_user"
PENDING_AT = "careloop.portal.pending_at"
PENDING_SECONDS = 5 * 60
BACKEND = "django.contrib.auth.backends.ModelBackend"


def _digest(*parts: str) -> str:
    message = "\x00".join(("portal-challenge", *parts)).encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


# --- who a patient user is ---------------------------------------------------------------


def portal_account(user: object) -> PortalAccount | None:
    """The portal account of a signed-in, active patient user; None for anyone else."""
    if not isinstance(user, User) or not user.is_active or user.role != Role.PATIENT:
        return None
    return PortalAccount.objects.filter(user=user).select_related("patient").first()


def portal_patients_for(account: PortalAccount, power: Power = Power.VIEW) -> list[Patient]:
    """The records this account may use `power` on: its own, then those it is a proxy
    for (careloop.portal.proxy: parents, caregivers, with the relationship's flags).
    Every portal read goes through this list."""
    return [grant.patient for grant in proxy_grants(account) if grant.allows(power)]


def portal_patient(
    *,
    account: PortalAccount,
    patient_id: uuid.UUID | None = None,
    power: Power = Power.VIEW,
    request: HttpRequest | None = None,
) -> Patient:
    """The record a portal page shows: the account's own (no `patient_id`), or one it
    may use `power` on as a proxy, which is audited (`portal.proxy_access`);
    `NotFound` alike for "not yours" and "does not exist"."""
    if patient_id is None or patient_id == account.patient_id:
        return account.patient
    grant = proxy_grant(account=account, patient_id=patient_id, power=power)
    proxy_access_audit(request=request, account=account, grant=grant, power=power)
    return grant.patient


def portal_appointments_upcoming(
    *, request: HttpRequest, account: PortalAccount, patient: Patient | None = None
) -> list[Appointment]:
    """Upcoming appointments that hold a time, of the account's own record or of
    `patient` (a record the caller got from `portal_patient`/`portal_acting`); the
    read is audited."""
    patient = patient or portal_patient(account=account)
    appointments = list(
        Appointment.objects.filter(patient=patient, start__gte=now(), status__in=HOLDING_STATUSES)
        .select_related("provider", "location", "appointment_type")
        .order_by("start", "id")[:20]
    )
    audit_record(
        action="patient.view",
        request=request,
        patient_id=patient.pk,
        resource_type="appointment",
        fields=("start", "provider", "location", "appointment_type"),
    )
    return appointments


# --- sending a one-time secret through the outbox ------------------------------------------


def _send(
    *,
    patient: Patient,
    channel: Channel,
    key: str,
    idempotency_key: str,
    links: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    template, fallback = template_for(key, channel, patient.preferred_language)
    context = render_context(patient, links=links, extra=extra, language=template.language)
    message_enqueue(
        patient=patient,
        channel=channel,
        purpose=Purpose(template.purpose),
        content_class=ContentClass(template.content_class),
        template_id=template.key,
        template_version=template.version,
        rendered=template_render(template, context),
        idempotency_key=idempotency_key,
        about=About(language=template.language, language_fallback=fallback),
    )


def _usable_contacts(value: str) -> tuple[Channel, list[uuid.UUID]] | None:
    """The channel of a typed e-mail address or mobile number, and the patients who have
    it on file, verified and usable on that channel (where the outbox would send)."""
    bidx = blind_value("contact", value)
    if bidx is None:
        return None
    channel = Channel.EMAIL if "@" in value else Channel.SMS
    system, flag = ADDRESS_SOURCE[channel]
    owners = ContactPoint.objects.filter(
        value_bidx=bidx, system=system, verified=True, **{flag: True}
    ).values_list("patient_id", flat=True)
    return channel, list(owners[:10])


# --- self-registration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What a visitor types to prove who they are (class I: never logged)."""

    given_name: str = ""
    family_name: str = ""
    birth_date: datetime.date | None = None
    contact: str = ""


def _identity_match(identity: Identity) -> tuple[Patient, Channel] | None:
    given = blind_value("name", identity.given_name)
    family = blind_value("name", identity.family_name)
    usable = _usable_contacts(identity.contact)
    if given is None or family is None or identity.birth_date is None or usable is None:
        return None
    channel, owners = usable
    found = list(
        Patient.objects.filter(
            id__in=owners,
            given_name_bidx=given,
            family_name_bidx=family,
            birth_date=identity.birth_date,
            merged_into__isnull=True,
            deceased_on__isnull=True,
        ).exclude(lifecycle_stage=LifecycleStage.DECEASED)[:2]
    )
    return (found[0], channel) if len(found) == 1 else None


def register_start(*, request: HttpRequest, identity: Identity) -> uuid.UUID | None:
    """Send a code to the contact on file when `identity` names exactly one record
    without a portal account; the challenge id, or None (the caller answers alike)."""
    match = _identity_match(identity)
    if match is None:
        audit_record(action="portal.register_start", request=request, outcome="failure")
        return None
    patient, channel = match
    if PortalAccount.objects.filter(patient=patient).exists():
        audit_record(
            action="portal.register_start",
            request=request,
            patient_id=patient.pk,
            outcome="denied",
        )
        return None
    code = f"{secrets.randbelow(10**6):06d}"
    at = now()
    with transaction.atomic():
        challenge = PortalChallenge.objects.create(
            id=uuid.uuid4(),
            kind=ChallengeKind.REGISTER_CODE,
            patient=patient,
            channel=channel,
            digest="",
            created_at=at,
            expires_at=at + CODE_TTL,
        )
        challenge.digest = _digest(str(challenge.id), code)
        challenge.save(update_fields=["digest"])
        _send(
            patient=patient,
            channel=channel,
            key="portal-verify-code",
            idempotency_key=f"portal-{challenge.id}",
            extra={"portal.code": code},
        )
        audit_record(
            action="portal.register_start",
            request=request,
            patient_id=patient.pk,
            resource_type="portal_challenge",
            resource_id=str(challenge.id),
        )
    return challenge.id


def register_complete(
    *, request: HttpRequest, challenge_id: uuid.UUID | None, code: str, password: str
) -> User | None:
    """The right code, fresh and unused: the patient user, linked to the record the
    code was sent for. Any failure is None (and a wrong code counts an attempt)."""
    at = now()
    code = "".join(code.split())
    with transaction.atomic():
        challenge = (
            PortalChallenge.objects.select_for_update()
            .filter(pk=challenge_id, kind=ChallengeKind.REGISTER_CODE)
            .first()
            if challenge_id is not None
            else None
        )
        usable = (
            challenge is not None
            and challenge.used_at is None
            and challenge.expires_at > at
            and challenge.attempts < CODE_ATTEMPTS
        )
        if challenge is None or not usable:
            audit_record(action="portal.register", request=request, outcome="failure")
            return None
        if not hmac.compare_digest(challenge.digest, _digest(str(challenge.id), code)):
            challenge.attempts += 1
            challenge.save(update_fields=["attempts"])
            audit_record(
                action="portal.register",
                request=request,
                patient_id=challenge.patient_id,
                outcome="failure",
            )
            return None
        challenge.used_at = at
        challenge.save(update_fields=["used_at"])
        # The row lock on the patient makes two registrations racing for one record
        # agree; the unique constraint on PortalAccount.patient is the last word.
        Patient.objects.select_for_update().filter(pk=challenge.patient_id).first()
        if PortalAccount.objects.filter(patient_id=challenge.patient_id).exists():
            return None
        user = User(username=f"patient-{uuid.uuid4().hex[:16]}", role=Role.PATIENT)
        user.set_password(password)
        user.save()
        PortalAccount.objects.create(user=user, patient_id=challenge.patient_id, created_at=at)
        audit_record(
            action="portal.register",
            request=request,
            actor=user,
            patient_id=challenge.patient_id,
            resource_type="portal_account",
            resource_id=str(user.pk),
        )
    return user


# --- sign-in -------------------------------------------------------------------------------


def _portal_users(contact: str) -> list[User]:
    usable = _usable_contacts(contact)
    if usable is None:
        return []
    _, owners = usable
    return list(
        User.objects.filter(
            role=Role.PATIENT, is_active=True, portal_account__patient_id__in=owners
        ).order_by("pk")
    )


def sign_in_password(*, request: HttpRequest, contact: str, password: str) -> PasswordOutcome:
    """The first factor by password, for the account(s) of a contact on file (a family
    may share one e-mail address: the password says whose). Failures count towards the
    same lockout as staff sign-ins."""
    candidates = _portal_users(contact)
    unlocked = [user for user in candidates if not account_locked(user)]
    for user in unlocked:
        if user.check_password(password):
            return PasswordOutcome(Outcome.OK, user)
    if not candidates:
        make_password(password)  # as slow as a real check: timing says nothing either
        login_failure_record(request=request, user=None, action="auth.login_failed")
        return PasswordOutcome(Outcome.INVALID)
    if not unlocked:
        audit_record(
            action="auth.login_failed", request=request, actor=candidates[0], outcome="denied"
        )
        return PasswordOutcome(Outcome.LOCKED)
    locked = False
    for user in unlocked:
        locked |= login_failure_record(request=request, user=user, action="auth.login_failed")
    return PasswordOutcome(Outcome.LOCKED if locked else Outcome.INVALID)


def sign_in_totp(*, request: HttpRequest, user: User, code: str) -> Outcome:
    """The second factor for a user with a TOTP device; OK signs the user in."""
    if account_locked(user):
        return Outcome.LOCKED
    device = mfa.mfa_device(user)
    if device is None:
        return Outcome.INVALID
    with transaction.atomic():
        if mfa.mfa_code_accepted(user=user, device=device, code=code):
            sign_in_complete(request=request, user=user)
            otp_login(request, device)
            return Outcome.OK
    locked = login_failure_record(request=request, user=user, action="auth.mfa_failed")
    return Outcome.LOCKED if locked else Outcome.INVALID


def sign_in_first_factor(*, request: HttpRequest, user: User) -> bool:
    """After a password or a link: sign in now (True), or remember the user until
    their TOTP code (False: the caller asks for it)."""
    if mfa.mfa_device(user) is None:
        sign_in_complete(request=request, user=user)
        return True
    request.session[PENDING_USER] = user.pk
    request.session[PENDING_AT] = now().timestamp()
    return False


def pending_user(request: HttpRequest) -> User | None:
    """The user whose first factor passed in this session, within `PENDING_SECONDS`."""
    user_id, at = request.session.get(PENDING_USER), request.session.get(PENDING_AT)
    if user_id is None or at is None or now().timestamp() - float(at) > PENDING_SECONDS:
        return None
    return User.objects.filter(pk=user_id, role=Role.PATIENT, is_active=True).first()


def sign_in_complete(*, request: HttpRequest, user: User) -> None:
    """Every factor proved: a new session (the session policy starts its clocks)."""
    request.session.pop(PENDING_USER, None)
    request.session.pop(PENDING_AT, None)
    auth_login(request, user, backend=BACKEND)
    login_failures_clear(user=user)
    audit_record(action="auth.login", request=request, actor=user)


def signin_link_send(*, request: HttpRequest, email: str) -> None:
    """E-mail a one-time sign-in link to each portal account of this verified address
    on file; nothing (and the same answer) for any other address."""
    if "@" not in email:
        return
    at = now()
    for user in _portal_users(email):
        if account_locked(user):
            continue
        token = secrets.token_urlsafe(32)
        with transaction.atomic():
            challenge = PortalChallenge.objects.create(
                id=uuid.uuid4(),
                kind=ChallengeKind.SIGNIN_LINK,
                patient=user.portal_account.patient,
                user=user,
                channel=Channel.EMAIL,
                digest=_digest(token),
                created_at=at,
                expires_at=at + LINK_TTL,
            )
            # The token rides in the query string, which the access log leaves out.
            url = f"{settings.PUBLIC_BASE_URL}{reverse('portal:link_open')}?"
            _send(
                patient=challenge.patient,
                channel=Channel.EMAIL,
                key="portal-signin-link",
                idempotency_key=f"portal-{challenge.id}",
                links={"signin": url + urlencode({"t": token})},
            )
            audit_record(
                action="portal.signin_link",
                request=request,
                actor=user,
                patient_id=challenge.patient_id,
                resource_type="portal_challenge",
                resource_id=str(challenge.id),
            )


def signin_link_use(*, request: HttpRequest, token: str) -> User | None:
    """The account a fresh, unused link opens; using it uses it up. None otherwise."""
    at = now()
    digest = _digest(token)
    with transaction.atomic():
        # One conditional UPDATE: of two clicks racing, exactly one claims the link.
        claimed = PortalChallenge.objects.filter(
            digest=digest, kind=ChallengeKind.SIGNIN_LINK, used_at__isnull=True, expires_at__gt=at
        ).update(used_at=at)
        challenge = (
            PortalChallenge.objects.select_related("user").filter(digest=digest).first()
            if claimed == 1
            else None
        )
        user = challenge.user if challenge is not None else None
        if user is None or not user.is_active or account_locked(user):
            audit_record(action="portal.signin_link", request=request, outcome="failure")
            return None
        audit_record(
            action="portal.signin_link",
            request=request,
            actor=user,
            patient_id=challenge.patient_id if challenge is not None else None,
            resource_type="portal_challenge",
            resource_id=str(challenge.pk if challenge is not None else ""),
            fields=("used_at",),
        )
    return user
