"""`{% patient_gap_cards p %}`: the care-gap cards on the patient page, for roles that
may read clinical data."""

from __future__ import annotations

from typing import Any

from django import template

from careloop.caregaps.cards import patient_gap_cards as gap_cards
from careloop.patients.models import Patient

register = template.Library()


@register.inclusion_tag("caregaps/_gap_cards.html", takes_context=True)
def patient_gap_cards(context: dict[str, Any], patient: Patient) -> dict[str, Any]:
    request = context.get("request")
    actor = getattr(request, "user", None)
    cards = gap_cards(actor=actor, patient=patient) if actor is not None else None
    return {"cards": cards}
