"""The waitlist: patients who want an earlier visit get offered time others give back.

For the portal and staff pages (keyword-only; `actor` is a staff `User`, the portal's
patient `User` — `require` lets a patient act on their own or a proxied record — or
`OnBehalf("patient", str(patient.pk))`):

- `waitlist_request(actor=, patient=, appointment_type=, provider=None, earliest=,
  latest=, time_of_day=TimeOfDay.ANY) -> WaitlistEntry` puts the patient on the list
  (`WaitlistInvalid` with a sentence to show when the dates or the type are wrong).
- `waitlist_remove(actor=, entry=)` takes an entry off (its open offers are withdrawn).
- `waitlist_entries(patient=) -> list[WaitlistEntry]` the patient's waiting entries.

How an offer travels: a cancellation, reschedule or no-show notes the freed time in its
own transaction (`waitlist_note_freed`, called by careloop.scheduling.booking) and
`waitlist_offer_freed` offers it after the commit. Each free slot of the entry's type
inside the freed time goes to the first `WAITLIST_OFFER_WAVE` matching entries (first
asked, first offered), through the outbox, with a one-click link `/w/<code>` (a random
code, as careloop.outreach.links: no PHI, nothing to tamper with). The first claim
books the slot through `appointment_book` (so never twice); the other offers of the
slot turn `gone` and their patients are told. Offers not claimed within
`WAITLIST_OFFER_MINUTES` expire and the next wave is asked (`waitlist_sweep`).
"""

from __future__ import annotations

import datetime
import enum
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils.crypto import get_random_string
from django_tasks_db.utils import exclusive_transaction

from careloop.consent.decisions import may_contact
from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.core.clock import now
from careloop.patients.models import Patient, TimelineKind
from careloop.patients.timeline import timeline_add
from careloop.scheduling.booking import (
    OnBehalf,
    SlotUnavailable,
    Who,
    appointment_book,
    appointments_authorise,
)
from careloop.scheduling.models import (
    Appointment,
    AppointmentType,
    FreedSlot,
    Location,
    OfferStatus,
    Provider,
    TimeOfDay,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from careloop.scheduling.slots import Slot, slots_search
from careloop.security.audit import audit_record
from careloop.security.models import Role, User

OFFER_TEMPLATE = "waitlist-offer"
GONE_TEMPLATE = "waitlist-slot-gone"
CHANNELS = ("sms", "email")
CODE_LENGTH = 12
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_RANGE_DAYS = 180
NOON = datetime.time(12)


class WaitlistInvalid(ValueError):
    """A request the waitlist cannot take; the message is for the person asking."""


class ClaimOutcome(enum.StrEnum):
    BOOKED = "booked"  # this click booked the slot
    ALREADY = "already"  # this offer had already booked it (a second click)
    GONE = "gone"  # someone else has it, or the offer was withdrawn
    EXPIRED = "expired"
    INVALID = "invalid"  # no such code


@dataclass(frozen=True)
class ClaimResult:
    outcome: ClaimOutcome
    offer: WaitlistOffer | None = None
    appointment: Appointment | None = None


# --- asking -----------------------------------------------------------------------------


def waitlist_request(
    *,
    actor: Who,
    patient: Patient,
    appointment_type: AppointmentType,
    earliest: datetime.date,
    latest: datetime.date,
    provider: Provider | None = None,
    time_of_day: TimeOfDay | str = TimeOfDay.ANY,
) -> WaitlistEntry:
    """Put `patient` on the waitlist for an earlier `appointment_type` visit between two
    local dates (inclusive), with `provider` or anyone, at a time of day."""
    who = appointments_authorise(actor, patient.pk)
    today = now().date()
    if time_of_day not in TimeOfDay.values:
        raise WaitlistInvalid("Choose morning, afternoon or any time.")
    if latest < earliest:
        raise WaitlistInvalid("The last date is before the first date.")
    if latest < today:
        raise WaitlistInvalid("The dates have already passed.")
    if (latest - max(earliest, today)).days > MAX_RANGE_DAYS:
        raise WaitlistInvalid(f"Choose dates at most {MAX_RANGE_DAYS} days apart.")
    by_patient = isinstance(who, OnBehalf) or who.role == Role.PATIENT
    if by_patient and not appointment_type.self_bookable:
        raise WaitlistInvalid("This kind of visit is booked by the practice: please call us.")
    with transaction.atomic():
        entry = WaitlistEntry.objects.create(
            patient=patient,
            appointment_type=appointment_type,
            provider=provider,
            earliest=max(earliest, today),
            latest=latest,
            time_of_day=TimeOfDay(time_of_day),
            channel="portal" if by_patient else "staff",
            requested_at=now(),
            requested_by=None if by_patient or not isinstance(who, User) else who,
        )
        _log(who, entry.patient, "waitlist.request", "Asked for an earlier visit", entry)
    return entry


def waitlist_remove(*, actor: Who, entry: WaitlistEntry) -> WaitlistEntry:
    """Take the entry off the list; its open offers are withdrawn (their links then
    say the time is no longer available)."""
    who = appointments_authorise(actor, entry.patient_id)
    with transaction.atomic():
        changed = WaitlistEntry.objects.filter(pk=entry.pk, status=WaitlistStatus.WAITING).update(
            status=WaitlistStatus.REMOVED, closed_at=now()
        )
        if changed:
            _withdraw_open(entry)
            _log(who, entry.patient, "waitlist.remove", "Left the waitlist", entry)
    entry.refresh_from_db()
    return entry


def waitlist_entries(*, patient: Patient) -> list[WaitlistEntry]:
    """The patient's entries still waiting, first asked first."""
    return list(
        WaitlistEntry.objects.filter(patient=patient, status=WaitlistStatus.WAITING)
        .select_related("appointment_type", "provider")
        .order_by("requested_at", "id")
    )


def waitlist_book(
    *,
    actor: User,
    entry: WaitlistEntry,
    provider: Provider,
    location: Location,
    start: datetime.datetime,
) -> Appointment:
    """Staff book an entry straight into a slot (`SlotUnavailable` when it is not free);
    the entry is closed as booked and its open offers withdrawn."""
    with exclusive_transaction():
        appointment = appointment_book(
            actor=actor,
            patient=entry.patient,
            appointment_type=entry.appointment_type,
            provider=provider,
            location=location,
            start=start,
        )
        _close_booked(entry, appointment)
    return appointment


# --- freed time -------------------------------------------------------------------------


def waitlist_note_freed(*, appointment: Appointment) -> bool:
    """Inside the transaction that freed `appointment`'s time: note it when it is still
    ahead and someone waits; whether it was noted."""
    if appointment.start <= now():
        return False
    if not _waiting(appointment).exists():
        return False
    FreedSlot.objects.get_or_create(appointment=appointment, defaults={"freed_at": now()})
    return True


def waitlist_offer_freed(*, appointment_id: uuid.UUID) -> int:
    """Offer the time `appointment_id` gave back (once); how many offers went out."""
    with transaction.atomic():
        freed = (
            FreedSlot.objects.select_for_update(skip_locked=True)
            .select_related("appointment__provider", "appointment__location")
            .filter(appointment_id=appointment_id, handled_at__isnull=True)
            .first()
        )
        if freed is None:
            return 0
        made = _offer_freed_time(freed.appointment)
        freed.handled_at = now()
        freed.save(update_fields=["handled_at"])
    return made


def _waiting(appointment: Appointment) -> QuerySet[WaitlistEntry]:
    day = _local_date(appointment.start, appointment.location)
    return WaitlistEntry.objects.filter(
        Q(provider__isnull=True) | Q(provider_id=appointment.provider_id),
        status=WaitlistStatus.WAITING,
        earliest__lte=day,
        latest__gte=day,
    )


def _offer_freed_time(appointment: Appointment) -> int:
    """Offer each free slot inside the freed time to its first wave of entries."""
    window_end = appointment.busy_until or appointment.end
    made = 0
    types = AppointmentType.objects.filter(
        pk__in=_waiting(appointment).values("appointment_type_id")
    )
    for kind in types:
        for slot in _free_slots(
            kind, appointment.provider, appointment.location, appointment.start
        ):
            if appointment.start <= slot.start < window_end:
                made += _offer_slot(kind, slot, wave=1)
    return made


def _free_slots(
    kind: AppointmentType, provider: Provider, location: Location, start: datetime.datetime
) -> list[Slot]:
    day = _local_date(start, location)
    return slots_search(
        appointment_type=kind,
        providers=[provider],
        locations=[location],
        start_date=day,
        end_date=day,
    )


def _local_date(at: datetime.datetime, location: Location) -> datetime.date:
    return at.astimezone(ZoneInfo(location.time_zone)).date()


def _fits(entry: WaitlistEntry, slot: Slot, location: Location) -> bool:
    local = slot.start.astimezone(ZoneInfo(location.time_zone))
    if not entry.earliest <= local.date() <= entry.latest:
        return False
    if entry.time_of_day == TimeOfDay.MORNING:
        return local.time() < NOON
    if entry.time_of_day == TimeOfDay.AFTERNOON:
        return local.time() >= NOON
    return True


def _offer_slot(kind: AppointmentType, slot: Slot, *, wave: int) -> int:
    """Offer `slot` to the next `WAITLIST_OFFER_WAVE` entries that fit it and have no
    offer open and were never offered it; how many offers were made."""
    location = Location.objects.get(pk=slot.location_id)
    expires = min(
        now() + datetime.timedelta(minutes=settings.WAITLIST_OFFER_MINUTES),
        slot.start - datetime.timedelta(minutes=kind.lead_minutes),
    )
    if expires <= now():
        return 0
    candidates = (
        WaitlistEntry.objects.filter(
            Q(provider__isnull=True) | Q(provider_id=slot.provider_id),
            status=WaitlistStatus.WAITING,
            appointment_type=kind,
        )
        .exclude(offers__status=OfferStatus.OPEN)
        .exclude(
            pk__in=WaitlistOffer.objects.filter(
                provider_id=slot.provider_id, start=slot.start
            ).values("entry_id")
        )
        .select_related("patient")
        .order_by("requested_at", "id")
    )
    chosen = [e for e in candidates if _fits(e, slot, location)][: settings.WAITLIST_OFFER_WAVE]
    for entry in chosen:
        offer = _new_offer(entry, kind, slot, wave=wave, expires=expires)
        _notify(offer, OFFER_TEMPLATE)
        _log(None, entry.patient, "waitlist.offer", "Offered an earlier visit", entry)
    return len(chosen)


def _new_offer(
    entry: WaitlistEntry,
    kind: AppointmentType,
    slot: Slot,
    *,
    wave: int,
    expires: datetime.datetime,
) -> WaitlistOffer:
    while True:
        try:
            with transaction.atomic():
                return WaitlistOffer.objects.create(
                    code=get_random_string(CODE_LENGTH, _ALPHABET),
                    entry=entry,
                    provider_id=slot.provider_id,
                    location_id=slot.location_id,
                    appointment_type=kind,
                    start=slot.start,
                    end=slot.end,
                    wave=wave,
                    created_at=now(),
                    expires_at=expires,
                )
        except IntegrityError:  # the same random code twice: draw again
            if WaitlistOffer.objects.filter(
                entry=entry, provider_id=slot.provider_id, start=slot.start
            ).exists():
                raise


def waitlist_offer_to(
    *,
    actor: User,
    entry: WaitlistEntry,
    provider: Provider,
    location: Location,
    start: datetime.datetime,
) -> WaitlistOffer:
    """Staff offer one free slot to one chosen entry, out of turn (`SlotUnavailable`
    when it is not free, `WaitlistInvalid` when it was offered to the entry before)."""
    appointments_authorise(actor, entry.patient_id)
    kind = entry.appointment_type
    slot = next((s for s in _free_slots(kind, provider, location, start) if s.start == start), None)
    if slot is None:
        raise SlotUnavailable("that time is not a free slot for this visit type", [])
    expires = min(
        now() + datetime.timedelta(minutes=settings.WAITLIST_OFFER_MINUTES),
        slot.start - datetime.timedelta(minutes=kind.lead_minutes),
    )
    if expires <= now():
        raise WaitlistInvalid("That time is too soon to offer.")
    with transaction.atomic():
        if WaitlistOffer.objects.filter(entry=entry, provider=provider, start=start).exists():
            raise WaitlistInvalid("This time was already offered to this patient.")
        offer = _new_offer(entry, kind, slot, wave=0, expires=expires)
        _notify(offer, OFFER_TEMPLATE)
        _log(actor, entry.patient, "waitlist.offer", "Offered an earlier visit", entry)
    return offer


# --- claiming ---------------------------------------------------------------------------


def claim_url(offer: WaitlistOffer) -> str:
    return settings.PUBLIC_BASE_URL + reverse("waitlist_claim:claim", args=[offer.code])


def waitlist_offer_open(code: str) -> WaitlistOffer | None:
    """The offer behind a link's code (None for an unknown or malformed one); reads only."""
    if not (code.isalnum() and len(code) <= 16):
        return None
    return (
        WaitlistOffer.objects.select_related("entry", "provider", "location", "appointment_type")
        .filter(code=code)
        .first()
    )


def waitlist_claim(*, code: str) -> ClaimResult:
    """The patient behind the offer's link takes the slot: booked through the booking
    service (so at most one claim of a slot wins), or told why not. Nothing changes on
    an unknown, expired or lost offer."""
    offer = waitlist_offer_open(code)
    if offer is None:
        return ClaimResult(ClaimOutcome.INVALID)
    patient_actor = OnBehalf("patient", str(offer.entry.patient_id))
    with exclusive_transaction():
        held = _lock_slot_offers(offer)
        early = _claim_refused(held)
        if early is not None:
            return ClaimResult(early, held, held.appointment)
        try:
            appointment = appointment_book(
                actor=patient_actor,
                patient=offer.entry.patient,
                appointment_type=held.appointment_type,
                provider=held.provider,
                location=held.location,
                start=held.start,
            )
        except SlotUnavailable:
            _slot_gone(held)
            held.refresh_from_db()
            return ClaimResult(ClaimOutcome.GONE, held)
        held.status, held.decided_at, held.appointment = OfferStatus.CLAIMED, now(), appointment
        held.save(update_fields=["status", "decided_at", "appointment"])
        _close_booked(held.entry, appointment)
        _slot_gone(held)
        _log(
            patient_actor, held.entry.patient, "waitlist.claim", "Took a waitlist offer", held.entry
        )
    return ClaimResult(ClaimOutcome.BOOKED, held, appointment)


def _lock_slot_offers(offer: WaitlistOffer) -> WaitlistOffer:
    """Lock every offer of the slot, in id order, and give back `offer` fresh.

    The one place claim locks are taken: a second claim of the slot waits here for the
    first to commit and then finds its offer gone, rather than racing it to the
    booking (where the winner, turning the loser's offer gone, and the loser, waiting
    on the winner's booking, would deadlock).
    """
    locked = WaitlistOffer.objects.select_for_update().filter(
        provider_id=offer.provider_id, start=offer.start
    )
    return {o.pk: o for o in locked.order_by("id")}[offer.pk]


def _claim_refused(offer: WaitlistOffer) -> ClaimOutcome | None:
    if offer.status == OfferStatus.CLAIMED:
        return ClaimOutcome.ALREADY
    if offer.status in (OfferStatus.GONE, OfferStatus.WITHDRAWN):
        return ClaimOutcome.GONE
    if offer.status == OfferStatus.EXPIRED or offer.expires_at <= now():
        return ClaimOutcome.EXPIRED
    return None


def _slot_gone(offer: WaitlistOffer) -> None:
    """The slot of `offer` is taken: its other open offers (and `offer` itself, when it
    lost) turn gone, and each of their patients is told once."""
    losing = WaitlistOffer.objects.filter(
        provider_id=offer.provider_id, start=offer.start, status=OfferStatus.OPEN
    ).select_related("entry__patient", "provider", "location", "appointment_type")
    for other in losing:
        changed = WaitlistOffer.objects.filter(pk=other.pk, status=OfferStatus.OPEN).update(
            status=OfferStatus.GONE, decided_at=now()
        )
        if changed:
            _notify(other, GONE_TEMPLATE)


def _close_booked(entry: WaitlistEntry, appointment: Appointment) -> None:
    WaitlistEntry.objects.filter(pk=entry.pk).update(
        status=WaitlistStatus.BOOKED, closed_at=now(), appointment=appointment
    )
    _withdraw_open(entry)


def _withdraw_open(entry: WaitlistEntry) -> None:
    WaitlistOffer.objects.filter(entry=entry, status=OfferStatus.OPEN).update(
        status=OfferStatus.WITHDRAWN, decided_at=now()
    )


# --- the sweep --------------------------------------------------------------------------


def waitlist_sweep(*, limit: int = 200) -> int:
    """Offer freed time a crash left unoffered, expire offers past their time and ask
    the next wave for slots nobody claimed; how many offers went out."""
    made = 0
    pending = FreedSlot.objects.filter(handled_at__isnull=True).order_by("freed_at")[:limit]
    for appointment_id in list(pending.values_list("appointment_id", flat=True)):
        made += waitlist_offer_freed(appointment_id=appointment_id)
    at = now()
    due = list(
        WaitlistOffer.objects.filter(status=OfferStatus.OPEN, expires_at__lte=at)
        .select_related("appointment_type")
        .order_by("expires_at")[:limit]
    )
    for offer in due:
        with transaction.atomic():
            changed = WaitlistOffer.objects.filter(pk=offer.pk, status=OfferStatus.OPEN).update(
                status=OfferStatus.EXPIRED, decided_at=at
            )
            if not changed or _slot_busy(offer):
                continue
            slot = Slot(offer.start, offer.end, offer.provider_id, offer.location_id)
            made += _offer_slot(offer.appointment_type, slot, wave=offer.wave + 1)
    return made


def _slot_busy(offer: WaitlistOffer) -> bool:
    """Is an offer of the slot still open or claimed, or the slot no longer free?"""
    if WaitlistOffer.objects.filter(
        provider_id=offer.provider_id,
        start=offer.start,
        status__in=(OfferStatus.OPEN, OfferStatus.CLAIMED),
    ).exists():
        return True
    free = _free_slots(offer.appointment_type, offer.provider, offer.location, offer.start)
    return not any(s.start == offer.start for s in free)


# --- messages and records ---------------------------------------------------------------


def _notify(offer: WaitlistOffer, key: str) -> None:
    """Send the offer (or its "gone" notice) through the outbox, on the patient's first
    reachable channel; the slot's date, time and place only (logistics)."""
    from careloop.outreach.journeys import channel_order
    from careloop.outreach.outbox import About, address_for, message_enqueue
    from careloop.outreach.placeholders import render_context
    from careloop.outreach.templates import TemplateMissing, template_for, template_render

    patient = offer.entry.patient
    at = now()
    candidates = []
    for channel in channel_order(patient, list(CHANNELS)):
        try:
            template, fallback = template_for(key, channel, patient.preferred_language)
        except TemplateMissing:
            continue
        candidates.append((channel, template, fallback))
    if not candidates:
        return
    chosen = candidates[0]
    for channel, template, fallback in candidates:
        if not address_for(patient=patient, channel=Channel(channel)):
            continue
        decision = may_contact(patient, channel, Purpose.APPOINTMENT, template.content_class, at)
        if decision.allowed or decision.retry_at is not None:
            chosen = (channel, template, fallback)
            break
    channel, template, fallback = chosen
    # The slot as an appointment not yet made, for the appointment.* placeholders.
    slot = Appointment(
        patient=patient,
        provider=offer.provider,
        location=offer.location,
        appointment_type=offer.appointment_type,
        start=offer.start,
        end=offer.end,
    )
    links = {"confirm": claim_url(offer)} if key == OFFER_TEMPLATE else {}
    context = render_context(patient, appointment=slot, links=links, language=template.language)
    message_enqueue(
        patient=patient,
        channel=Channel(channel),
        purpose=Purpose.APPOINTMENT,
        content_class=ContentClass(template.content_class),
        template_id=template.key,
        template_version=template.version,
        rendered=template_render(template, context),
        idempotency_key=f"{key}-{offer.pk}",
        send_at=at,
        about=About(language=template.language, language_fallback=fallback),
    )


def _log(
    who: User | OnBehalf | None, patient: Patient, action: str, summary: str, entry: WaitlistEntry
) -> None:
    """Timeline (coded words) and audit event of a waitlist change."""
    user = who if isinstance(who, User) else None
    by: dict[str, object] = {"actor": user}
    if isinstance(who, OnBehalf):
        by = {"actor_kind": who.kind, "actor_id": who.id}
    elif who is None:
        by = {"actor_kind": "system", "actor_id": "scheduling.waitlist"}
    timeline_add(
        patient=patient,
        kind=TimelineKind.APPOINTMENT,
        summary=summary,
        actor=user,
        ref_type="waitlist",
        ref_id=str(entry.pk),
    )
    audit_record(
        action=action,
        patient_id=patient.pk,
        resource_type="waitlist_entry",
        resource_id=str(entry.pk),
        fields=("status",),
        **by,  # type: ignore[arg-type]
    )
