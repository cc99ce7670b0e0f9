from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms

from careloop.patients.models import Sex
from careloop.patients.registration import Registration
from careloop.security import normalize

LANGUAGES = [
    ("en", "English"),
    ("es", "Spanish"),
    ("zh", "Chinese"),
    ("vi", "Vietnamese"),
    ("ar", "Arabic"),
    ("fr", "French"),
    ("ko", "Korean"),
    ("ru", "Russian"),
]
ZONES = [
    (zone, zone.replace("_", " "))
    for zone in (
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Phoenix",
        "America/Los_Angeles",
        "America/Anchorage",
        "Pacific/Honolulu",
    )
]


class RegistrationForm(forms.Form):
    given_name = forms.CharField(label="First name", max_length=100)
    family_name = forms.CharField(label="Last name", max_length=100)
    birth_date = forms.DateField(
        label="Date of birth", widget=forms.DateInput(attrs={"type": "date"})
    )
    sex = forms.ChoiceField(choices=Sex.choices, initial=Sex.UNKNOWN)
    preferred_language = forms.ChoiceField(label="Preferred language", choices=LANGUAGES)
    time_zone = forms.ChoiceField(label="Time zone", choices=ZONES)
    state = forms.CharField(label="State (2 letters)", max_length=2, required=False)
    phone = forms.CharField(label="Mobile phone", max_length=32, required=False)
    email = forms.EmailField(label="E-mail", required=False)
    mrn = forms.CharField(label="MRN (if the EHR has one)", max_length=40, required=False)
    not_a_duplicate_because = forms.CharField(
        label="Why this is a different person",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean_phone(self) -> str:
        raw: str = self.cleaned_data["phone"]
        if not raw.strip():
            return ""
        try:
            return normalize.phone(raw)
        except normalize.NormalizationError:
            raise forms.ValidationError(
                "Enter a US phone number with area code, or an international number with +."
            ) from None

    def clean_state(self) -> str:
        state: str = self.cleaned_data["state"].strip().upper()
        if state and not state.isalpha():
            raise forms.ValidationError("Use the two-letter state code, e.g. TX.")
        return state

    def clean_time_zone(self) -> str:
        zone: str = self.cleaned_data["time_zone"]
        zoneinfo.ZoneInfo(zone)
        return zone

    def registration(self) -> Registration:
        data: dict[str, Any] = self.cleaned_data
        return Registration(
            given_name=data["given_name"].strip(),
            family_name=data["family_name"].strip(),
            birth_date=data["birth_date"],
            sex=data["sex"],
            preferred_language=data["preferred_language"],
            time_zone=data["time_zone"],
            state=data["state"],
            phone=data["phone"],
            email=data["email"],
            mrn=data["mrn"].strip(),
        )
