"""Staff forms: sign a document with the patient (or their proxy), record an answer."""

from __future__ import annotations

from typing import Any

from django import forms

from careloop.consent.models import (
    Channel,
    ConsentKind,
    ConsentStatus,
    Purpose,
    RestrictedTopic,
)
from careloop.consent.preferences import CHANNEL_CONSENT_KINDS, Preferences
from careloop.consent.services import STAFF_RECORDED_METHODS


class SignForm(forms.Form):
    signer_name = forms.CharField(
        label="Full name of the signer", max_length=200, required=True, strip=True
    )
    signer_is_proxy = forms.BooleanField(label="Signed by a proxy", required=False)
    proxy_authority = forms.CharField(
        label="Proxy's authority (e.g. parent of a minor, health care POA)",
        max_length=200,
        required=False,
    )
    agree = forms.BooleanField(label="I have read and agree", required=True)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("signer_is_proxy") and not (data.get("proxy_authority") or "").strip():
            self.add_error("proxy_authority", "Say under what authority the proxy signs.")
        return data


class RecordForm(forms.Form):
    kind = forms.ChoiceField(choices=ConsentKind.choices)
    status = forms.ChoiceField(
        choices=[
            (ConsentStatus.GRANTED.value, ConsentStatus.GRANTED.label),
            (ConsentStatus.DENIED.value, ConsentStatus.DENIED.label),
            (ConsentStatus.REVOKED.value, ConsentStatus.REVOKED.label),
        ]
    )
    method = forms.ChoiceField(
        label="How it was given", choices=[(m.value, m.label) for m in STAFF_RECORDED_METHODS]
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000
    )


_OPT_CHOICES = [("", "No answer"), ("in", "Opted in"), ("out", "Opted out")]
_CONSENT_CHOICES = [
    ("", "Unchanged"),
    (ConsentStatus.GRANTED.value, "Grant"),
    (ConsentStatus.REVOKED.value, "Revoke"),
    (ConsentStatus.DENIED.value, "Deny"),
]


def opt_in_field_name(channel: str, purpose: str) -> str:
    return f"optin_{channel}_{purpose}"


class PreferencesForm(forms.Form):
    """The preference centre. The opt-in grid and channel consents are added per value."""

    channel_order = forms.CharField(
        label="Preferred channels, in order (comma-separated, e.g. sms, email, portal)",
        required=False,
        max_length=100,
    )
    # Shown back as HH:MM, the shape the label asks for (the default adds ":00" seconds).
    quiet_start = forms.TimeField(
        label="Quiet hours from (local, HH:MM)",
        required=False,
        widget=forms.TimeInput(format="%H:%M"),
    )
    quiet_end = forms.TimeField(
        label="Quiet hours until (local, HH:MM)",
        required=False,
        widget=forms.TimeInput(format="%H:%M"),
    )
    do_not_contact = forms.BooleanField(label="Do not contact", required=False)
    topics = forms.MultipleChoiceField(
        label="Never contact about",
        choices=RestrictedTopic.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    method = forms.ChoiceField(
        label="How the patient told us",
        choices=[(m.value, m.label) for m in STAFF_RECORDED_METHODS],
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in CHANNEL_CONSENT_KINDS:
            self.fields[f"consent_{kind.value}"] = forms.ChoiceField(
                label=kind.label, choices=_CONSENT_CHOICES, required=False
            )
        for channel in Channel:
            for purpose in Purpose:
                self.fields[opt_in_field_name(channel.value, purpose.value)] = forms.ChoiceField(
                    label=f"{channel.label}: {purpose.label}", choices=_OPT_CHOICES, required=False
                )

    def clean_channel_order(self) -> list[Channel]:
        names = [n.strip().lower() for n in self.cleaned_data["channel_order"].split(",")]
        names = [n for n in names if n]
        unknown = [n for n in names if n not in Channel.values]
        if unknown:
            raise forms.ValidationError(f"Channels are {', '.join(Channel.values)}.")
        if len(set(names)) != len(names):
            raise forms.ValidationError("Name each channel once.")
        return [Channel(n) for n in names]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            self.add_error("quiet_end", "Give both ends of the quiet hours, or neither.")
        return data

    def preferences(self) -> Preferences:
        data = self.cleaned_data
        opt_ins = {}
        for channel in Channel:
            for purpose in Purpose:
                answer = data.get(opt_in_field_name(channel.value, purpose.value))
                if answer:
                    opt_ins[(channel, purpose)] = answer == "in"
        return Preferences(
            channel_order=data["channel_order"],
            quiet_start=data.get("quiet_start"),
            quiet_end=data.get("quiet_end"),
            do_not_contact=data["do_not_contact"],
            opt_ins=opt_ins,
            topics=frozenset(RestrictedTopic(t) for t in data["topics"]),
            channel_consents={
                kind: ConsentStatus(data[f"consent_{kind.value}"])
                for kind in CHANNEL_CONSENT_KINDS
                if data.get(f"consent_{kind.value}")
            },
        )


def preferences_initial(preferences: Preferences) -> dict[str, Any]:
    initial: dict[str, Any] = {
        "channel_order": ", ".join(str(c) for c in preferences.channel_order),
        "quiet_start": preferences.quiet_start,
        "quiet_end": preferences.quiet_end,
        "do_not_contact": preferences.do_not_contact,
        "topics": [str(t) for t in preferences.topics],
    }
    for (channel, purpose), opted_in in preferences.opt_ins.items():
        initial[opt_in_field_name(channel, purpose)] = "in" if opted_in else "out"
    return initial
