"""Staff pages of a patient's insurance cards (uploaded in the portal): the current
sides and the history, each side a download. Coverage read and the patient in scope
are required (careloop.portal.insurance); every read is audited."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from careloop.core.web import staff_page
from careloop.portal import insurance
from careloop.portal.views_messages import attachment_response
from careloop.security.permissions import Op, Resource


@never_cache
@require_safe
@staff_page(Op.READ, Resource.COVERAGE)
def cards(request: HttpRequest, patient_id: uuid.UUID) -> HttpResponse:
    patient, rows = insurance.staff_cards(actor=request.user, patient_id=patient_id)
    context = {
        "p": patient,
        "current": [row for row in rows if row.superseded_at is None],
        "history": [row for row in rows if row.superseded_at is not None],
    }
    return render(request, "insurance_cards/list.html", context)


@never_cache
@require_safe
@staff_page(Op.READ, Resource.COVERAGE)
def card_file(request: HttpRequest, patient_id: uuid.UUID, card_id: uuid.UUID) -> HttpResponse:
    card, content = insurance.staff_card(actor=request.user, patient_id=patient_id, card_id=card_id)
    return attachment_response(card, content)
