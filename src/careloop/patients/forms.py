"""Forms for the patient profile's edit pages: they validate and explain, services write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import validate_slug

from careloop.patients.contacts import (
    ContactDetails,
    CoverageDetails,
    contact_channels_error,
    contact_normalize,
)
from careloop.patients.household import RelationshipDetails
from careloop.patients.models import (
    ContactSystem,
    ContactUse,
    CoverageStatus,
    PayerCategory,
    RelationshipCode,
)
from careloop.patients.notes import MAX_NOTE_LENGTH
from careloop.scheduling.models import Location, Provider
from careloop.security.models import Role, User
from careloop.security.normalize import NormalizationError

SUBSCRIBER_RELATIONSHIPS = [
    ("self", "Self"),
    ("spouse", "Spouse"),
    ("child", "Child"),
    ("other", "Other"),
]
MAX_TAGS = 20


class ContactPointForm(forms.Form):
    system = forms.ChoiceField(label="Type", choices=ContactSystem.choices)
    use = forms.ChoiceField(label="Use", choices=ContactUse.choices)
    value = forms.CharField(label="Number or address", max_length=254)
    rank = forms.IntegerField(
        label="Rank", min_value=1, max_value=9, initial=1, help_text="1 is tried first."
    )
    verified = forms.BooleanField(label="Verified", required=False)
    can_sms = forms.BooleanField(label="SMS", required=False)
    can_voice = forms.BooleanField(label="Voice", required=False)
    can_email = forms.BooleanField(label="E-mail", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            data["value"] = contact_normalize(system=data["system"], value=data["value"])
        except NormalizationError:
            noun = "phone number" if data["system"] == ContactSystem.PHONE else "e-mail address"
            self.add_error("value", f"That is not a valid {noun}.")
            return data
        if (error := contact_channels_error(self.details(data))) is not None:
            raise forms.ValidationError(error)
        return data

    @staticmethod
    def details(data: dict[str, Any]) -> ContactDetails:
        return ContactDetails(
            system=data["system"],
            use=data["use"],
            value=data["value"],
            rank=data["rank"],
            verified=data["verified"],
            can_sms=data["can_sms"],
            can_voice=data["can_voice"],
            can_email=data["can_email"],
        )


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Note",
        max_length=MAX_NOTE_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class CoverageForm(forms.Form):
    payer_category = forms.ChoiceField(label="Payer category", choices=PayerCategory.choices)
    payer_name = forms.CharField(label="Payer", max_length=120)
    plan_name = forms.CharField(label="Plan", max_length=120, required=False)
    member_id = forms.CharField(label="Member id", max_length=64, required=False)
    subscriber_relationship = forms.ChoiceField(
        label="Subscriber is the patient's", choices=SUBSCRIBER_RELATIONSHIPS, initial="self"
    )
    period_start = forms.DateField(label="From", required=False)
    period_end = forms.DateField(label="Until", required=False)
    status = forms.ChoiceField(label="Status", choices=CoverageStatus.choices)
    rank = forms.IntegerField(label="Order", min_value=1, max_value=9, initial=1)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("period_start"), data.get("period_end")
        if start and end and end < start:
            self.add_error("period_end", "The coverage cannot end before it starts.")
        return data

    def details(self) -> CoverageDetails:
        data = self.cleaned_data
        return CoverageDetails(
            payer_category=data["payer_category"],
            payer_name=data["payer_name"],
            plan_name=data["plan_name"],
            member_id=data["member_id"],
            subscriber_relationship=data["subscriber_relationship"],
            period_start=data["period_start"],
            period_end=data["period_end"],
            status=data["status"],
            rank=data["rank"],
        )


class TagsForm(forms.Form):
    tags = forms.CharField(
        label="Tags",
        required=False,
        max_length=800,
        help_text="Short labels separated by commas, e.g. interpreter-needed, vip.",
    )

    def clean_tags(self) -> list[str]:
        words = [w.strip().lower() for w in self.cleaned_data["tags"].split(",") if w.strip()]
        for word in words:
            if len(word) > 40:
                raise forms.ValidationError("A tag has at most 40 characters.")
            try:
                validate_slug(word)
            except forms.ValidationError:
                raise forms.ValidationError(
                    "Tags use letters, digits, hyphens and underscores only."
                ) from None
        if len(set(words)) > MAX_TAGS:
            raise forms.ValidationError(f"At most {MAX_TAGS} tags.")
        return sorted(set(words))


class CareTeamForm(forms.Form):
    primary_provider = forms.ModelChoiceField(
        label="Primary provider", queryset=Provider.objects.none(), required=False
    )
    home_location = forms.ModelChoiceField(
        label="Home location", queryset=Location.objects.none(), required=False
    )
    care_coordinator = forms.ModelChoiceField(
        label="Care coordinator", queryset=User.objects.none(), required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields: Any = self.fields
        fields["primary_provider"].queryset = Provider.objects.order_by("display_name")
        fields["home_location"].queryset = Location.objects.order_by("name")
        fields["care_coordinator"].queryset = User.objects.filter(
            role=Role.CARE_COORDINATOR, is_active=True
        ).order_by("username")
        fields["care_coordinator"].label_from_instance = lambda u: u.get_full_name() or u.username
        fields["primary_provider"].label_from_instance = lambda p: p.display_name


class RelationshipForm(forms.Form):
    code = forms.ChoiceField(label="Relationship", choices=RelationshipCode.choices)
    related_patient = forms.UUIDField(
        label="Patient id", required=False, help_text="When the person is a patient here too."
    )
    related_name = forms.CharField(
        label="Name", max_length=200, required=False, help_text="When they are not a patient."
    )
    period_start = forms.DateField(label="Since")
    may_schedule = forms.BooleanField(label="May book appointments", required=False)
    may_message = forms.BooleanField(label="May exchange messages", required=False)
    may_view_record = forms.BooleanField(label="May view the record", required=False)
    may_sign_consents = forms.BooleanField(label="May sign consents", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        has_patient = data.get("related_patient") is not None
        has_name = bool((data.get("related_name") or "").strip())
        if has_patient == has_name and not self.errors:
            raise forms.ValidationError("Give either a patient id or a name, not both.")
        return data

    def details(self) -> RelationshipDetails:
        data = self.cleaned_data
        return RelationshipDetails(
            code=data["code"],
            related_patient_id=data["related_patient"],
            related_name=data["related_name"],
            may_schedule=data["may_schedule"],
            may_message=data["may_message"],
            may_view_record=data["may_view_record"],
            may_sign_consents=data["may_sign_consents"],
            period_start=data["period_start"],
        )


class AddressForm(forms.Form):
    line = forms.CharField(label="Street address", max_length=200)
    city = forms.CharField(max_length=100)
    state = forms.CharField(label="State", max_length=2)
    postal_code = forms.CharField(label="ZIP code", max_length=10)
