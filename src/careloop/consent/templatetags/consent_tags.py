"""`{% patient_consents p %}`: the consent card on the patient page, for roles that may read it."""

from __future__ import annotations

from typing import Any

from django import template

from careloop.consent.selectors import consent_summary
from careloop.patients.models import Patient

register = template.Library()


@register.inclusion_tag("consent/_patient_consents_card.html", takes_context=True)
def patient_consents(context: dict[str, Any], patient: Patient) -> dict[str, Any]:
    request = context.get("request")
    actor = getattr(request, "user", None)
    summary = consent_summary(actor=actor, patient=patient) if actor is not None else None
    return {"summary": summary}
