"""Providers, locations, appointment types, availability and appointments."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models


class Location(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120, unique=True)
    time_zone = models.CharField(max_length=64)
    address = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    directions = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Provider(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    display_name = models.CharField(max_length=120)
    npi = models.CharField(max_length=10, unique=True)
    specialty = models.CharField(max_length=80)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="providers")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name


class ResourceKind(models.TextChoices):
    ROOM = "room", "Room"
    EQUIPMENT = "equipment", "Equipment"


class Resource(models.Model):
    """A room or a piece of equipment at a location, used by one visit at a time. A
    visit type that names a kind (`AppointmentType.resource_kind`) takes any free
    active one of that kind at the visit's location (docs/scheduling.md)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="resources")
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=12, choices=ResourceKind.choices)
    # Retire a room rather than delete it: past visits keep naming it.
    active = models.BooleanField(default=True, db_default=True)

    class Meta:
        ordering = ["location", "name"]
        constraints = [
            models.UniqueConstraint(fields=["location", "name"], name="resource_name_per_location"),
            models.CheckConstraint(
                condition=models.Q(kind__in=ResourceKind.values), name="resource_kind_known"
            ),
        ]

    def __str__(self) -> str:
        return self.name


def validate_booking_roles(value: object) -> None:
    """A list of staff role codes (careloop.security.models.Role), for forms and admin."""
    from careloop.security.models import STAFF_ROLES

    codes = {str(role) for role in STAFF_ROLES}
    if not isinstance(value, list) or not all(isinstance(v, str) and v in codes for v in value):
        raise ValidationError(f"list staff role codes only: {', '.join(sorted(codes))}")


class AppointmentType(models.Model):
    code = models.SlugField(max_length=40, primary_key=True)
    name = models.CharField(max_length=80)
    minutes = models.PositiveSmallIntegerField()
    telehealth = models.BooleanField(default=False)
    new_patient = models.BooleanField(default=False)
    self_bookable = models.BooleanField(default=False)
    # The CPT/HCPCS code the visit is billed under, which quality measures look for.
    visit_code = models.CharField(max_length=16, blank=True)
    # Booking rules. Database defaults too, so rows made outside the ORM (EHR ingest,
    # the demo loader) get the same rules.
    lead_minutes = models.PositiveIntegerField(default=0, db_default=0)
    horizon_days = models.PositiveSmallIntegerField(default=90, db_default=90)
    buffer_minutes = models.PositiveSmallIntegerField(default=0, db_default=0)
    # At most this many of this type per provider and local day; null is no cap.
    per_day_cap = models.PositiveSmallIntegerField(null=True, blank=True)
    # The kind of room or equipment a visit of this type takes for [start, busy_until);
    # null: none.
    resource_kind = models.CharField(
        max_length=12, choices=ResourceKind.choices, null=True, blank=True
    )
    # The staff roles that may book this type (role codes); empty: every role that may
    # book appointments at all. Patients are governed by `self_bookable` alone.
    booking_roles = models.JSONField(
        default=list, db_default=[], blank=True, validators=[validate_booking_roles]
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(minutes__gt=0), name="appttype_minutes_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(horizon_days__gt=0), name="appttype_horizon_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def bookable_by(self, role: str) -> bool:
        """May a staff user of `role` book this type (the permission table aside)?"""
        return not self.booking_roles or role in self.booking_roles


class WeeklyAvailability(models.Model):
    """A provider's recurring hours at a location: one weekday, local wall-clock times
    (in the location's zone), valid between two dates (inclusive; no end is open)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="availability")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="availability")
    weekday = models.PositiveSmallIntegerField(help_text="0 is Monday, as date.weekday()")
    start_time = models.TimeField()
    end_time = models.TimeField()
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["provider", "weekday", "start_time"]
        indexes = [models.Index(fields=["provider", "weekday"], name="avail_provider_weekday_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(weekday__lte=6), name="avail_weekday_range"),
            models.CheckConstraint(
                condition=models.Q(end_time__gt=models.F("start_time")),
                name="avail_end_after_start",
            ),
            models.CheckConstraint(
                condition=models.Q(valid_to__isnull=True)
                | models.Q(valid_to__gte=models.F("valid_from")),
                name="avail_valid_range",
            ),
        ]


class ExceptionKind(models.TextChoices):
    EXTRA = "extra", "Extra hours"
    BLOCK = "block", "Block"


class AvailabilityException(models.Model):
    """One date that differs from the weekly pattern: extra hours for a provider at a
    location, or a block (a meeting, leave, a holiday). A block with no provider applies
    to the whole practice, with no location to every location, with no times to the
    whole day. Times are local to the location of the hours they change."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=8, choices=ExceptionKind.choices)
    provider = models.ForeignKey(
        Provider, on_delete=models.CASCADE, null=True, blank=True, related_name="exceptions"
    )
    location = models.ForeignKey(
        Location, on_delete=models.CASCADE, null=True, blank=True, related_name="exceptions"
    )
    date = models.DateField()
    start_time = models.TimeField(null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True)
    # A coded word ("holiday", "training"), never a patient's anything.
    label = models.CharField(max_length=60, blank=True)

    class Meta:
        ordering = ["date", "start_time"]
        indexes = [models.Index(fields=["date"], name="availexc_date_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=ExceptionKind.values), name="availexc_kind_known"
            ),
            # Either the whole day (no times) or a real interval.
            models.CheckConstraint(
                condition=models.Q(start_time__isnull=True, end_time__isnull=True)
                | models.Q(end_time__gt=models.F("start_time")),
                name="availexc_times",
            ),
            # Extra hours are someone's hours somewhere, at stated times.
            models.CheckConstraint(
                condition=~models.Q(kind=ExceptionKind.EXTRA)
                | models.Q(
                    provider__isnull=False, location__isnull=False, start_time__isnull=False
                ),
                name="availexc_extra_complete",
            ),
        ]


class AppointmentStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    CONFIRMED = "confirmed", "Confirmed"
    CHECKED_IN = "checked_in", "Checked in"
    FULFILLED = "fulfilled", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "noshow", "No-show"


# The statuses that hold the provider's time; cancelled and no-show free it. The
# exclusion constraint (migration 0002) names the same list.
HOLDING_STATUSES: tuple[str, ...] = (
    AppointmentStatus.BOOKED,
    AppointmentStatus.CONFIRMED,
    AppointmentStatus.CHECKED_IN,
    AppointmentStatus.FULFILLED,
)


class Appointment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="appointments"
    )
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="appointments")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="appointments")
    appointment_type = models.ForeignKey(AppointmentType, on_delete=models.PROTECT)
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(
        max_length=12, choices=AppointmentStatus.choices, default=AppointmentStatus.BOOKED
    )
    source = models.CharField(max_length=16, default="careloop")
    created_at = models.DateTimeField()
    # The end of the time this booking claims: `end` plus the type's buffer. Set only
    # by careloop's booking service; EHR rows leave it null, so the exclusion constraint
    # (which covers rows with it) never refuses what the EHR reports, and conflicts with
    # EHR rows are found by the booking check instead (docs/decisions.md).
    busy_until = models.DateTimeField(null=True, blank=True)
    # The room or equipment the visit takes, when its type needs one (a free one is
    # chosen at booking). The exclusion constraint `appt_no_resource_double_booking`
    # (migration 0005) keeps two bookings from holding it at once.
    resource = models.ForeignKey(
        Resource, on_delete=models.PROTECT, null=True, blank=True, related_name="appointments"
    )
    rescheduled_from = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rescheduled_to"
    )
    # A telehealth visit's video room (random, unguessable: careloop.scheduling.telehealth);
    # blank until the first join link is made, and for visits in person. A database
    # default too: the EHR's bulk loader inserts rows without naming it.
    telehealth_room = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        ordering = ["start"]
        indexes = [
            models.Index(fields=["provider", "start"], name="appt_provider_start_idx"),
            models.Index(fields=["patient", "start"], name="appt_patient_start_idx"),
            models.Index(fields=["status", "start"], name="appt_status_start_idx"),
            # The slot search reads a room's bookings in a window; most rows have none.
            models.Index(
                fields=["resource", "start"],
                condition=models.Q(resource__isnull=False),
                name="appt_resource_start_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="appt_end_after_start"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=AppointmentStatus.values), name="appt_status_known"
            ),
            # The claimed time covers the visit itself (a range the exclusion can take).
            models.CheckConstraint(
                condition=models.Q(busy_until__isnull=True)
                | models.Q(busy_until__gte=models.F("end")),
                name="appt_busy_covers_visit",
            ),
        ]


# --- waitlist (careloop.scheduling.waitlist) -------------------------------------------


class TimeOfDay(models.TextChoices):
    MORNING = "morning", "Morning (before noon)"
    AFTERNOON = "afternoon", "Afternoon (noon on)"
    ANY = "any", "Any time"


class WaitlistStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    BOOKED = "booked", "Booked"
    REMOVED = "removed", "Removed"


class WaitlistEntry(models.Model):
    """A patient's wish for an earlier visit: a type, optionally a provider, a range of
    dates and a time of day. First asked, first offered (`requested_at`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="waitlist_entries"
    )
    appointment_type = models.ForeignKey(AppointmentType, on_delete=models.PROTECT)
    provider = models.ForeignKey(
        Provider, on_delete=models.CASCADE, null=True, blank=True, related_name="waitlist"
    )
    earliest = models.DateField()
    latest = models.DateField()
    time_of_day = models.CharField(max_length=10, choices=TimeOfDay.choices, default=TimeOfDay.ANY)
    status = models.CharField(
        max_length=10, choices=WaitlistStatus.choices, default=WaitlistStatus.WAITING
    )
    # "portal" or "staff": who put the patient on the list.
    channel = models.CharField(max_length=8)
    requested_at = models.DateTimeField()
    requested_by = models.ForeignKey(
        "security.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    appointment = models.ForeignKey(
        Appointment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["requested_at", "id"]
        indexes = [
            models.Index(
                fields=["status", "appointment_type", "requested_at"], name="waitlist_match_idx"
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(latest__gte=models.F("earliest")), name="waitlist_date_range"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=WaitlistStatus.values), name="waitlist_status_known"
            ),
            models.CheckConstraint(
                condition=models.Q(time_of_day__in=TimeOfDay.values),
                name="waitlist_time_of_day_known",
            ),
        ]


class FreedSlot(models.Model):
    """Time a cancellation, reschedule or no-show gave back, written in the same
    transaction as the change when someone is waiting for that type; the waitlist
    offers it and stamps `handled_at` (a sweep takes up any left unhandled)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    appointment = models.OneToOneField(Appointment, on_delete=models.CASCADE, related_name="+")
    freed_at = models.DateTimeField()
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["freed_at", "id"]
        indexes = [models.Index(fields=["handled_at", "freed_at"], name="freedslot_due_idx")]


class OfferStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLAIMED = "claimed", "Claimed"
    GONE = "gone", "Taken by someone else"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"


class WaitlistOffer(models.Model):
    """One slot offered to one waitlist entry, behind a random one-click code
    (`/w/<code>`: no id, no PHI in the URL). The offers of one slot are a race: the
    first claim books it through the booking service; the rest become `gone`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=16, unique=True)
    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="offers")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    appointment_type = models.ForeignKey(AppointmentType, on_delete=models.PROTECT)
    start = models.DateTimeField()
    end = models.DateTimeField()
    wave = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=OfferStatus.choices, default=OfferStatus.OPEN)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    appointment = models.ForeignKey(
        Appointment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["provider", "start", "status"], name="offer_slot_idx"),
            models.Index(fields=["status", "expires_at"], name="offer_due_idx"),
        ]
        constraints = [
            # One slot is offered to one entry once, whatever the waves.
            models.UniqueConstraint(
                fields=["entry", "provider", "start"], name="offer_once_per_entry_slot"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=OfferStatus.values), name="offer_status_known"
            ),
        ]


# --- conflicts with the EHR (careloop.scheduling.conflicts) -----------------------------


class ConflictKind(models.TextChoices):
    OVERLAP = "overlap", "EHR appointment overlaps a careloop booking"
    EHR_CHANGED = "ehr_changed", "EHR changed a careloop booking"


class AppointmentConflict(models.Model):
    """Something the EHR reported that disagrees with a careloop booking, for staff to
    settle; careloop never overwrites its booking silently. `appointment` is careloop's
    booking, `other` the EHR's row (the same row for `ehr_changed`, whose `proposed_*`
    hold what the EHR said)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=12, choices=ConflictKind.choices)
    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="+")
    proposed_start = models.DateTimeField(null=True, blank=True)
    proposed_end = models.DateTimeField(null=True, blank=True)
    proposed_status = models.CharField(max_length=12, blank=True)
    proposed_provider = models.ForeignKey(
        Provider, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    detected_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        "security.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # A coded word: kept_careloop, kept_ehr, cancelled_careloop, accepted_ehr, resolved,
    # cleared (the EHR row stopped holding the time).
    resolution = models.CharField(max_length=24, blank=True)

    class Meta:
        ordering = ["detected_at", "id"]
        indexes = [models.Index(fields=["resolved_at", "detected_at"], name="conflict_open_idx")]
        constraints = [
            # One open conflict per pair and kind: re-ingesting the same message does not
            # pile up duplicates.
            models.UniqueConstraint(
                fields=["kind", "appointment", "other"],
                condition=models.Q(resolved_at__isnull=True),
                name="conflict_open_once",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=ConflictKind.values), name="conflict_kind_known"
            ),
        ]
