"""The staff calendar's forms: finding free times to book, and choosing one."""

from __future__ import annotations

import datetime
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from django import forms

from careloop.scheduling.models import AppointmentType, Location, Provider

# A search longer than this is not a booking, it is a report.
MAX_SEARCH_DAYS = 31
DEFAULT_SEARCH_DAYS = 7


class BookingSearchForm(forms.Form):
    appointment_type = forms.ModelChoiceField(
        queryset=AppointmentType.objects.all(), label="Appointment type", empty_label=None
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.all(), label="Location", empty_label=None
    )
    provider = forms.ModelChoiceField(
        queryset=Provider.objects.filter(active=True),
        label="Provider",
        required=False,
        empty_label="Any provider",
    )
    start_date = forms.DateField(label="From", widget=forms.DateInput({"type": "date"}))
    end_date = forms.DateField(label="To", widget=forms.DateInput({"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("start_date"), data.get("end_date")
        if first and last:
            if last < first:
                raise forms.ValidationError("The end date is before the start date.")
            if (last - first).days >= MAX_SEARCH_DAYS:
                raise forms.ValidationError(f"Search at most {MAX_SEARCH_DAYS} days at a time.")
        return data


def parse_start(value: str | None, zone: ZoneInfo) -> datetime.datetime | None:
    """An ISO date-time from a form or a drop; a time without an offset is read in
    `zone`. None for anything that is not one."""
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def parse_slot(value: str | None) -> tuple[uuid.UUID, datetime.datetime] | None:
    """A chosen slot, `<provider id>@<ISO start>`; None for anything else."""
    provider, _, start = (value or "").partition("@")
    try:
        provider_id = uuid.UUID(provider)
        moment = datetime.datetime.fromisoformat(start)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return provider_id, moment


def slot_value(provider_id: uuid.UUID, start: datetime.datetime) -> str:
    return f"{provider_id}@{start.isoformat()}"
