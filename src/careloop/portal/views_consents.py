"""Portal pages for consents, the preference centre and "who looked at my record".

Each page acts for the record chosen in the portal's switcher (careloop.portal.proxy):
the account's own, or one it is a proxy for. Seeing needs the `view` power; signing,
revoking and changing preferences need `sign_consents` (`may_sign_consents`), which the
consent services check again (careloop.consent.services.consent_writer).

Writes go through the consent services with the portal's capture methods: a signature
or a signed revocation is PORTAL_ESIGNATURE, a preference change PORTAL_PREFERENCES;
the staff consent history shows both with their source.
"""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from careloop.consent.decisions import OPT_OUT_PURPOSES
from careloop.consent.documents import consent_document_current, consent_needs
from careloop.consent.ledger import consent_current
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ConsentDocument,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
    Purpose,
)
from careloop.consent.preferences import (
    CHANNEL_CONSENT_KINDS,
    Preferences,
    preferences_current,
    preferences_update,
)
from careloop.consent.services import (
    REVOCABLE_KINDS,
    ConsentError,
    consent_revoke_signed,
    consent_sign,
)
from careloop.core.clock import now
from careloop.patients.models import Patient, PatientRelationship
from careloop.portal.disclosures import portal_disclosures
from careloop.portal.models import PortalAccount
from careloop.portal.proxy import Grant, Power, portal_acting
from careloop.portal.views_push import push_context
from careloop.portal.web import portal_page
from careloop.security.audit import audit_record, source_address

FORM_METHODS = ["GET", "HEAD", "POST"]
LANGUAGE_CHOICES = [("en", "English"), ("es", "Español")]
# The portal's own words for the kinds and channels (the models' labels are staff English).
KIND_LABELS = {
    ConsentKind.TREATMENT: gettext_lazy("Consent to treatment"),
    ConsentKind.NPP_ACK: gettext_lazy("Notice of Privacy Practices"),
    ConsentKind.SMS: gettext_lazy("Text messages"),
    ConsentKind.EMAIL: gettext_lazy("E-mail"),
    ConsentKind.VOICE: gettext_lazy("Phone calls"),
    ConsentKind.PUSH: gettext_lazy("Push notifications"),
    ConsentKind.MARKETING: gettext_lazy("News and offers"),
    ConsentKind.TELEHEALTH: gettext_lazy("Telehealth (video visits)"),
    ConsentKind.RESEARCH: gettext_lazy("Research"),
    ConsentKind.THIRD_PARTY: gettext_lazy("Sharing with a named third party"),
}
CHANNEL_LABELS = {
    Channel.SMS: gettext_lazy("Text message"),
    Channel.EMAIL: gettext_lazy("E-mail"),
    Channel.VOICE: gettext_lazy("Phone call"),
    Channel.PUSH: gettext_lazy("Push notification"),
    Channel.PORTAL: gettext_lazy("Secure portal message"),
}
PURPOSE_LABELS = {
    Purpose.APPOINTMENT: gettext_lazy("Appointments"),
    Purpose.CARE_REMINDER: gettext_lazy("Care reminders"),
    Purpose.BILLING: gettext_lazy("Billing"),
    Purpose.MARKETING: gettext_lazy("News and offers"),
    Purpose.SURVEY: gettext_lazy("Surveys"),
}
STATUS_LABELS = {
    ConsentStatus.GRANTED: gettext_lazy("Signed"),
    ConsentStatus.DENIED: gettext_lazy("Declined"),
    ConsentStatus.REVOKED: gettext_lazy("Revoked"),
    ConsentStatus.EXPIRED: gettext_lazy("Expired"),
}
METHOD_LABELS = {
    CaptureMethod.PORTAL_ESIGNATURE: gettext_lazy("signed in the portal"),
    CaptureMethod.PORTAL_PREFERENCES: gettext_lazy("changed in the preference centre"),
    CaptureMethod.STAFF_ESIGNATURE: gettext_lazy("signed with staff"),
    CaptureMethod.PAPER: gettext_lazy("on paper"),
    CaptureMethod.VERBAL: gettext_lazy("by phone with staff"),
    CaptureMethod.SMS_KEYWORD: gettext_lazy("by text message reply"),
    CaptureMethod.EMAIL_LINK: gettext_lazy("by an e-mail unsubscribe link"),
    CaptureMethod.IMPORTED: gettext_lazy("from your health record"),
}


def _acting(request: HttpRequest, account: PortalAccount, power: Power) -> Grant:
    return portal_acting(request=request, account=account, power=power)


def _local(patient: Patient) -> Any:
    return timezone.override(zoneinfo.ZoneInfo(patient.time_zone))


def _kind(kind: str) -> ConsentKind:
    if kind not in ConsentKind.values:
        raise Http404
    return ConsentKind(kind)


# --- consents ------------------------------------------------------------------------------


class SignForm(forms.Form):
    signer_name = forms.CharField(
        label=gettext_lazy("Type your full name to sign"), max_length=200, strip=True
    )
    agree = forms.BooleanField(
        label=gettext_lazy("I have read this document and I agree to it"), required=True
    )
    # The hash of the text shown: a document republished meanwhile is not signed unread.
    document_sha256 = forms.CharField(widget=forms.HiddenInput, max_length=64)


class RevokeForm(forms.Form):
    signer_name = forms.CharField(
        label=gettext_lazy("Type your full name to sign the revocation"),
        max_length=200,
        strip=True,
    )
    confirm = forms.BooleanField(
        label=gettext_lazy("I want to withdraw this consent from now on"), required=True
    )


def _proxy_authority(grant: Grant) -> str:
    """For a proxy signer: the relationship under which they act ("Parent")."""
    codes = PatientRelationship.objects.filter(pk__in=grant.relationship_ids).values_list(
        "code", flat=True
    )
    labels = dict(PatientRelationship._meta.get_field("code").choices or [])
    return ", ".join(sorted({str(labels.get(code, code)) for code in codes})) or "Proxy"


def _signed(patient: Patient) -> list[dict[str, Any]]:
    """The newest whole-kind record of each kind the patient answered, for the list."""
    at = now()
    newest: dict[str, ConsentRecord] = {}
    for record in ConsentRecord.objects.filter(patient=patient, scope="").order_by(
        "-captured_at", "-recorded_at"
    ):
        newest.setdefault(record.kind, record)
    lines = []
    for kind, record in sorted(newest.items()):
        status = consent_current(patient=patient, kind=ConsentKind(kind), at=at)
        lines.append(
            {
                "record": record,
                "kind": kind,
                "label": KIND_LABELS[ConsentKind(kind)],
                "status": status,
                "status_label": STATUS_LABELS.get(status, "") if status else "",
                "method_label": METHOD_LABELS.get(CaptureMethod(record.capture_method), ""),
                "revocable": ConsentKind(kind) in REVOCABLE_KINDS
                and status == ConsentStatus.GRANTED,
            }
        )
    return lines


def _audit_view(request: HttpRequest, patient: Patient, fields: tuple[str, ...]) -> None:
    audit_record(
        action="consent.view",
        request=request,
        patient_id=patient.pk,
        resource_type="consent",
        fields=fields,
    )


@never_cache
@require_GET
@portal_page
def consents(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    grant = _acting(request, account, Power.VIEW)
    patient = grant.patient
    needs = consent_needs(patient=patient, at=now())
    lines = _signed(patient)
    _audit_view(request, patient, ("history", "needs"))
    with _local(patient):
        return render(
            request,
            "portal/consents/list.html",
            {
                "grant": grant,
                "needs": [
                    {"document": d, "label": KIND_LABELS[ConsentKind(d.kind)]} for d in needs
                ],
                "lines": lines,
                "may_sign": grant.allows(Power.SIGN_CONSENTS),
                "revocable_labels": [KIND_LABELS[k] for k in ConsentKind if k in REVOCABLE_KINDS],
            },
        )


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def consent_sign_page(request: HttpRequest, account: PortalAccount, kind: str) -> HttpResponse:
    document = consent_document_current(kind=_kind(kind))
    if document is None:
        raise Http404
    grant = _acting(request, account, Power.SIGN_CONSENTS)
    patient = grant.patient
    form = SignForm(
        request.POST if request.method == "POST" else None,
        initial={"document_sha256": document.body_sha256},
    )
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["document_sha256"] != document.body_sha256:
            form.add_error(
                None,
                _(
                    "This document changed while you were reading it. "
                    "Please read the new version and sign again."
                ),
            )
        else:
            try:
                consent_sign(
                    actor=account.user,
                    patient=patient,
                    document=document,
                    signer_name=form.cleaned_data["signer_name"],
                    signer_is_proxy=not grant.own,
                    proxy_authority="" if grant.own else _proxy_authority(grant),
                    source_ip=source_address(request),
                    method=CaptureMethod.PORTAL_ESIGNATURE,
                    request=request,
                )
            except ConsentError:
                form.add_error("signer_name", _("Type your full name to sign."))
            else:
                messages.success(request, _("Thank you. Your signature is recorded."))
                return HttpResponseRedirect(reverse("portal:consents"))
    _audit_view(request, patient, ("document",))
    context = {
        "grant": grant,
        "document": document,
        "label": KIND_LABELS[ConsentKind(document.kind)],
        "form": form,
    }
    return render(request, "portal/consents/sign.html", context)


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def consent_revoke_page(request: HttpRequest, account: PortalAccount, kind: str) -> HttpResponse:
    consent_kind = _kind(kind)
    grant = _acting(request, account, Power.SIGN_CONSENTS)
    patient = grant.patient
    form = RevokeForm(request.POST if request.method == "POST" else None)
    error = ""
    if consent_kind not in REVOCABLE_KINDS:
        error = (
            _(
                "The Notice of Privacy Practices acknowledgement says you received the "
                "notice; it cannot be taken back."
            )
            if consent_kind == ConsentKind.NPP_ACK
            else _(
                "Consent to treatment cannot be withdrawn online, because it changes your "
                "care. Please send your care team a message or call the front desk."
            )
        )
    elif request.method == "POST" and form.is_valid():
        try:
            consent_revoke_signed(
                actor=account.user,
                patient=patient,
                kind=consent_kind,
                signer_name=form.cleaned_data["signer_name"],
                source_ip=source_address(request),
                request=request,
            )
        except ConsentError:
            error = _("This consent is not in force, so there is nothing to revoke.")
        else:
            messages.success(request, _("Your consent is revoked from now on."))
            return HttpResponseRedirect(reverse("portal:consents"))
    context = {"grant": grant, "label": KIND_LABELS[consent_kind], "form": form, "error": error}
    status = 409 if error and request.method == "POST" else 200
    return render(request, "portal/consents/revoke.html", context, status=status)


def _download_text(record: ConsentRecord, patient: Patient) -> str:
    document: ConsentDocument | None = record.document
    zone = zoneinfo.ZoneInfo(patient.time_zone)
    signed_at = record.captured_at.astimezone(zone)
    lines = [
        document.title if document else str(KIND_LABELS[ConsentKind(record.kind)]),
        "=" * 60,
        "",
        document.body if document else "",
        "",
        "-" * 60,
        _("Signature record"),
        f"{_('Status')}: {STATUS_LABELS.get(ConsentStatus(record.status), record.status)}",
        f"{_('Signed by')}: {record.signature_name or '-'}",
    ]
    if record.signer_is_proxy:
        lines.append(f"{_('Signed as a proxy')}: {record.proxy_authority or '-'}")
    lines += [
        f"{_('Signed at')}: {signed_at:%Y-%m-%d %H:%M:%S %Z} ({record.captured_at.isoformat()})",
        f"{_('How')}: {METHOD_LABELS.get(CaptureMethod(record.capture_method), '')}",
        f"{_('Document version')}: {record.document_version or '-'}",
        f"{_('Document SHA-256')}: {record.document_sha256 or '-'}",
        f"{_('Record id')}: {record.pk}",
        f"{_('Record integrity hash')}: {record.integrity_hash or '-'}",
    ]
    return "\n".join(lines) + "\n"


@never_cache
@require_GET
@portal_page
def consent_download(
    request: HttpRequest, account: PortalAccount, record_id: uuid.UUID
) -> HttpResponse:
    grant = _acting(request, account, Power.VIEW)
    record = (
        ConsentRecord.objects.filter(pk=record_id, patient=grant.patient)
        .select_related("document")
        .first()
    )
    if record is None:
        raise Http404
    audit_record(
        action="consent.export",
        request=request,
        patient_id=grant.patient.pk,
        resource_type="consent",
        resource_id=str(record.pk),
        fields=("document", "signature"),
    )
    response = HttpResponse(
        _download_text(record, grant.patient), content_type="text/plain; charset=utf-8"
    )
    name = f"consent-{record.kind}-{record.captured_at:%Y%m%d}.txt"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- preference centre ---------------------------------------------------------------------


def _optin_name(channel: Channel, purpose: Purpose) -> str:
    return f"optin_{channel.value}_{purpose.value}"


def _consent_name(kind: ConsentKind) -> str:
    return f"consent_{kind.value}"


RANKS = (
    ("channel_1", gettext_lazy("First choice")),
    ("channel_2", gettext_lazy("Second choice")),
    ("channel_3", gettext_lazy("Third choice")),
)


class PortalPreferencesForm(forms.Form):
    quiet_start = forms.TimeField(
        label=gettext_lazy("Quiet hours start"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    quiet_end = forms.TimeField(
        label=gettext_lazy("Quiet hours end"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )

    def __init__(self, *args: Any, languages: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", _("No preference"))] + [(c.value, str(CHANNEL_LABELS[c])) for c in Channel]
        for name, label in RANKS:
            self.fields[name] = forms.ChoiceField(label=label, choices=choices, required=False)
        self.fields["language"] = forms.ChoiceField(
            label=_("Language for messages"), choices=languages
        )
        for kind in CHANNEL_CONSENT_KINDS:
            self.fields[_consent_name(kind)] = forms.BooleanField(
                label=KIND_LABELS[kind], required=False
            )
        for purpose in Purpose:
            for channel in Channel:
                self.fields[_optin_name(channel, purpose)] = forms.BooleanField(
                    label=CHANNEL_LABELS[channel], required=False
                )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        order = [data.get(name) for name, _label in RANKS if data.get(name)]
        if len(set(order)) != len(order):
            self.add_error("channel_2", _("Choose each channel once."))
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            self.add_error("quiet_end", _("Give both ends of the quiet hours, or neither."))
        return data

    def purpose_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "label": PURPOSE_LABELS[purpose],
                "fields": [self[_optin_name(channel, purpose)] for channel in Channel],
            }
            for purpose in Purpose
        ]

    def consent_fields(self) -> list[forms.BoundField]:
        return [self[_consent_name(kind)] for kind in CHANNEL_CONSENT_KINDS]

    def rank_fields(self) -> list[forms.BoundField]:
        return [self[name] for name, _label in RANKS]


def _default_in(purpose: Purpose) -> bool:
    """What `may_contact` assumes with no answer: in for these purposes, out for others."""
    return purpose in OPT_OUT_PURPOSES


def _preferences_initial(patient: Patient, current: Preferences) -> dict[str, Any]:
    at = now()
    initial: dict[str, Any] = {
        "quiet_start": current.quiet_start,
        "quiet_end": current.quiet_end,
        "language": patient.preferred_language,
    }
    for (name, _label), channel in zip(RANKS, current.channel_order, strict=False):
        initial[name] = channel.value
    for kind in CHANNEL_CONSENT_KINDS:
        status = consent_current(patient=patient, kind=kind, at=at)
        initial[_consent_name(kind)] = status == ConsentStatus.GRANTED
    for purpose in Purpose:
        for channel in Channel:
            stored = current.opt_ins.get((channel, purpose))
            initial[_optin_name(channel, purpose)] = (
                _default_in(purpose) if stored is None else stored
            )
    return initial


def _preferences_from(
    form: PortalPreferencesForm, patient: Patient, before: Preferences
) -> Preferences:
    """The form as a whole preference centre; answers left at what `may_contact` assumes
    stay unanswered, and what the portal does not show (do-not-contact, topics) stays."""
    data = form.cleaned_data
    at = now()
    opt_ins: dict[tuple[Channel, Purpose], bool] = {}
    for purpose in Purpose:
        for channel in Channel:
            checked = bool(data.get(_optin_name(channel, purpose)))
            stored = before.opt_ins.get((channel, purpose))
            if stored is not None or checked != _default_in(purpose):
                opt_ins[(channel, purpose)] = checked
    consents: dict[ConsentKind, ConsentStatus] = {}
    for kind in CHANNEL_CONSENT_KINDS:
        granted = consent_current(patient=patient, kind=kind, at=at) == ConsentStatus.GRANTED
        checked = bool(data.get(_consent_name(kind)))
        if checked and not granted:
            consents[kind] = ConsentStatus.GRANTED
        elif granted and not checked:
            consents[kind] = ConsentStatus.REVOKED
    language = data.get("language") or None
    return Preferences(
        channel_order=[Channel(data[name]) for name, _label in RANKS if data.get(name)],
        quiet_start=data.get("quiet_start"),
        quiet_end=data.get("quiet_end"),
        do_not_contact=before.do_not_contact,
        opt_ins=opt_ins,
        topics=before.topics,
        channel_consents=consents,
        language=language if language != patient.preferred_language else None,
    )


@never_cache
@require_http_methods(FORM_METHODS)
@portal_page
def preferences(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    power = Power.SIGN_CONSENTS if request.method == "POST" else Power.VIEW
    grant = _acting(request, account, power)
    patient = grant.patient
    languages = list(LANGUAGE_CHOICES)
    if patient.preferred_language not in dict(languages):
        languages.insert(0, (patient.preferred_language, _("Keep my current language")))
    current = preferences_current(patient=patient)
    if request.method == "POST":
        form = PortalPreferencesForm(request.POST, languages=languages)
        if form.is_valid():
            wanted = _preferences_from(form, patient, current)
            try:
                changed = preferences_update(
                    actor=account.user,
                    patient=patient,
                    preferences=wanted,
                    method=CaptureMethod.PORTAL_PREFERENCES,
                    source_ip=source_address(request),
                    request=request,
                )
            except ConsentError:
                form.add_error(None, _("Those preferences could not be saved. Please check them."))
            else:
                messages.success(
                    request,
                    _("Your preferences are saved.") if changed else _("Nothing changed."),
                )
                target = reverse("portal:preferences")
                if "language" in changed and grant.own and wanted.language:
                    # The portal speaks the new language from the next page on.
                    target += "?" + urlencode({"lang": wanted.language})
                return HttpResponseRedirect(target)
    else:
        form = PortalPreferencesForm(
            initial=_preferences_initial(patient, current), languages=languages
        )
        audit_record(
            action="consent.view",
            request=request,
            patient_id=patient.pk,
            resource_type="communication_preferences",
            fields=("preferences",),
        )
    context = {
        "grant": grant,
        "form": form,
        "may_change": grant.allows(Power.SIGN_CONSENTS),
        "channel_labels": [CHANNEL_LABELS[c] for c in Channel],
        **push_context(grant),
    }
    return render(request, "portal/preferences/edit.html", context)


# --- who looked at my record ---------------------------------------------------------------


class RangeForm(forms.Form):
    since = forms.DateField(
        label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    page = forms.IntegerField(min_value=1, max_value=100_000, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", _("The end date is before the start date."))
        return data


@never_cache
@require_GET
@portal_page
def disclosures(request: HttpRequest, account: PortalAccount) -> HttpResponse:
    grant = _acting(request, account, Power.VIEW)
    patient = grant.patient
    form = RangeForm(request.GET or None)
    since: datetime.date | None = None
    until: datetime.date | None = None
    page = 1
    if form.is_bound and form.is_valid():
        since, until = form.cleaned_data["since"], form.cleaned_data["until"]
        page = form.cleaned_data["page"] or 1
    result = portal_disclosures(
        request=request,
        viewer=account.user,
        patient=patient,
        since=since,
        until=until,
        page=page,
    )
    query: dict[str, str | int] = {
        name: day.isoformat() for name, day in (("since", since), ("until", until)) if day
    }

    def page_link(number: int) -> str:
        return "?" + urlencode({**query, "page": number})

    with _local(patient):
        return render(
            request,
            "portal/disclosures/list.html",
            {
                "grant": grant,
                "form": form,
                "result": result,
                "newer": page_link(result.page - 1) if result.page > 1 else "",
                "older": page_link(result.page + 1) if result.has_next else "",
            },
        )
