"""Forms of the integration pages: the quarantine filter, a dismissal, a match decision."""

from __future__ import annotations

from django import forms

from careloop.ehr.models import QuarantineStatus, Source

ANY_STATUS = "any"


class QuarantineFilterForm(forms.Form):
    """What the quarantine list shows; a GET (statuses and source names hold no PHI)."""

    status = forms.ChoiceField(
        choices=[*QuarantineStatus.choices, (ANY_STATUS, "Any status")], required=False
    )
    source = forms.ModelChoiceField(
        queryset=Source.objects.all(), required=False, empty_label="Every source"
    )

    def filters(self) -> tuple[str, int | None]:
        """(status or "" for any, source id or None); open items of every source by default."""
        if not self.is_valid():
            return QuarantineStatus.OPEN, None
        status = self.cleaned_data["status"] or QuarantineStatus.OPEN
        source = self.cleaned_data["source"]
        return ("" if status == ANY_STATUS else status), (source.pk if source else None)


class DismissForm(forms.Form):
    reason = forms.CharField(
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text="Why this item will not be re-processed. Kept encrypted in the audit log.",
    )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("merge", "The same person: merge"), ("distinct", "Different people")],
        widget=forms.RadioSelect,
    )
