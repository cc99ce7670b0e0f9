"""The worklist's filter form: GET parameters (codes, dates, ids: no class-I value), so a
filtered list can be bookmarked, paged and exported with the same URL."""

from __future__ import annotations

from typing import Any

from django import forms

from careloop.caregaps.measure import Measure
from careloop.caregaps.models import GapStatus
from careloop.caregaps.worklist_query import STATUS_ORDER, ContactConsent, Sort, WorklistFilter
from careloop.scheduling.models import Location, Provider

MAX_DAYS = 3650
MAX_AGE = 130


class WorklistForm(forms.Form):
    group = forms.TypedChoiceField(coerce=int, required=False, label="Population")
    status = forms.MultipleChoiceField(
        required=False,
        choices=[(str(s), str(GapStatus(s).label)) for s in STATUS_ORDER],
        widget=forms.CheckboxSelectMultiple,
        label="Status",
    )
    due_from = forms.DateField(
        required=False, label="Due from", widget=forms.DateInput({"type": "date"})
    )
    due_to = forms.DateField(
        required=False, label="Due to", widget=forms.DateInput({"type": "date"})
    )
    due_within = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_DAYS,
        label="Due within (days)",
        help_text="Due or lapsed by today plus this many days.",
    )
    provider = forms.ModelChoiceField(
        queryset=Provider.objects.order_by("display_name"),
        required=False,
        empty_label="Any provider",
        label="Primary provider",
    )
    location = forms.ModelChoiceField(
        queryset=Location.objects.order_by("name"),
        required=False,
        empty_label="Any location",
        label="Home location",
    )
    age_min = forms.IntegerField(required=False, min_value=0, max_value=MAX_AGE, label="Age from")
    age_max = forms.IntegerField(required=False, min_value=0, max_value=MAX_AGE, label="Age to")
    no_contact_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_DAYS,
        label="Not contacted in the last (days)",
        help_text="Includes patients never contacted.",
    )
    never_contacted = forms.BooleanField(required=False, label="Never contacted")
    consent = forms.ChoiceField(
        required=False, choices=ContactConsent.CHOICES, label="Consent to contact"
    )
    mine = forms.BooleanField(required=False, label="Only patients I coordinate")
    no_upcoming_visit = forms.BooleanField(required=False, label="No upcoming visit booked")
    sort = forms.ChoiceField(required=False, choices=Sort.choices(), label="Sort by")

    def __init__(self, *args: Any, measure: Measure, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        numbers = range(1, len(measure.groups) + 1)
        self.fields["group"].choices = [(n, f"Population {n}") for n in numbers]  # type: ignore[attr-defined]
        if len(measure.groups) == 1:
            self.fields["group"].widget = forms.HiddenInput()

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        due_from, due_to = data.get("due_from"), data.get("due_to")
        if due_from and due_to and due_from > due_to:
            self.add_error("due_to", "“Due to” must be on or after “Due from”.")
        age_min, age_max = data.get("age_min"), data.get("age_max")
        if age_min is not None and age_max is not None and age_min > age_max:
            self.add_error("age_max", "“Age to” must be at least “Age from”.")
        return data

    def filters(self) -> WorklistFilter:
        """The validated filter (call after `is_valid()`)."""
        data = self.cleaned_data
        provider, location = data.get("provider"), data.get("location")
        return WorklistFilter(
            group=data.get("group") or 1,
            statuses=tuple(data.get("status") or ()),
            due_from=data.get("due_from"),
            due_to=data.get("due_to"),
            due_within_days=data.get("due_within"),
            provider_id=provider.pk if provider is not None else None,
            location_id=location.pk if location is not None else None,
            age_min=data.get("age_min"),
            age_max=data.get("age_max"),
            never_contacted=bool(data.get("never_contacted")),
            no_contact_days=data.get("no_contact_days"),
            consent=data.get("consent") or ContactConsent.ANY,
            mine=bool(data.get("mine")),
            no_upcoming_visit=bool(data.get("no_upcoming_visit")),
            sort=data.get("sort") or Sort.DUE,
        )
