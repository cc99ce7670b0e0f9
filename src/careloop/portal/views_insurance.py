"""The portal's insurance card page: the coverage on file, the card's current sides
(each a download, never an inline image), and the upload form (careloop.portal.insurance
holds the rules).

The page acts for the record chosen in the switcher: seeing it needs the view power,
uploading the schedule power (careloop.portal.proxy). Uploads are read in memory only
and capped (careloop.portal.uploads); a refused file shows the form again with the
reason and writes nothing.
"""

from __future__ import annotations

import uuid

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from careloop.core.errors import NotFound
from careloop.portal import insurance
from careloop.portal.attachments import AttachmentRefused, Upload, max_bytes
from careloop.portal.models import CardSide, PortalAccount
from careloop.portal.proxy import Power, portal_acting
from careloop.portal.uploads import oversized, upload_form
from careloop.portal.views_messages import attachment_response, new_key
from careloop.portal.web import portal_page
from careloop.security.audit import audit_record


def masked(member_id: str | None) -> str:
    """A member id with all but its last 4 characters hidden."""
    if not member_id:
        return ""
    tail = member_id[-4:] if len(member_id) > 4 else ""
    return f"•••• {tail}" if tail else "••••"


def _sides_sent(request: HttpRequest) -> dict[str, Upload]:
    """The sides chosen in the form, or `AttachmentRefused` for a file left out."""
    if oversized(request):
        limit = f"{max_bytes() / (1024 * 1024):g}"
        raise AttachmentRefused(
            _("This file is larger than %(limit)s MB. Send a smaller file.") % {"limit": limit}
        )
    sent = {}
    for side in insurance.SIDES:
        upload = request.FILES.get(side)
        if upload is not None:
            sent[side.value] = Upload(name=str(upload.name or ""), content=upload.read())
    return sent


def _side_labels() -> dict[str, str]:
    return {CardSide.FRONT: _("Front of the card"), CardSide.BACK: _("Back of the card")}


@upload_form
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@portal_page
def insurance_page(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    posted = request.method == "POST"
    grant = portal_acting(
        request=request, account=account, power=Power.SCHEDULE if posted else None
    )
    patient = grant.patient
    sees = grant.allows(Power.VIEW)
    may_upload = grant.allows(Power.SCHEDULE)
    if not (sees or may_upload):
        raise NotFound("no such patient")
    error = ""
    key = ""
    if posted:
        key = request.POST.get("idempotency_key", "")
        try:
            insurance.insurance_card_upload(
                user=account.user,
                patient=patient,
                uploads=_sides_sent(request),
                idempotency_key=key,
            )
        except AttachmentRefused as refused:
            error = refused.reason
        else:
            flash.success(request, _("Thank you. Your insurance card was uploaded."))
            return HttpResponseRedirect(reverse("portal:insurance"))
    # A scheduling-only proxy uploads the card at check-in but does not see the record's.
    coverage = insurance.coverage_on_file(patient) if sees else None
    current = insurance.current_cards(patient=patient) if sees else {}
    audit_record(
        action="patient.view",
        request=request,
        patient_id=patient.pk,
        resource_type="insurance_card_page",
        fields=("coverage", "insurance_card"),
    )
    context = {
        "grant": grant,
        "coverage": coverage,
        "member_id": masked(coverage.member_id if coverage else None),
        "sides": [
            {"side": side, "label": label, "card": current.get(side)}
            for side, label in _side_labels().items()
        ],
        "sees": sees,
        "may_upload": may_upload,
        "key": key or new_key(),
        "error": error,
        "max_mb": f"{max_bytes() / (1024 * 1024):g}",
    }
    return render(request, "portal/insurance/page.html", context)


@never_cache
@require_safe
@portal_page
def insurance_card_file(
    request: HttpRequest, account: PortalAccount, card_id: uuid.UUID
) -> HttpResponse:
    grant = portal_acting(request=request, account=account, power=Power.VIEW)
    card, content = insurance.patient_card(
        user=account.user, patient=grant.patient, card_id=card_id
    )
    return attachment_response(card, content)
