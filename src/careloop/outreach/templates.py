"""Message templates: the linter, versions, rendering and the built-ins.

A template is practice text with `{{ name.part }}` placeholders: no logic, no filters,
so what a reviewer reads is what a patient gets. Every placeholder has a content class
(`generic`, `logistics`, `sensitive`) and the template declares one; the linter refuses
a placeholder above the template's class and a class the channel may not carry, so a
diagnosis cannot reach an SMS by an edit. Saving adds a version and makes it the one
active version of (key, channel, language); a sent message names the exact version.
The placeholders themselves, and where their values come from, are in
careloop.outreach.placeholders.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import uuid

from django.conf import settings
from django.db import connections, transaction

from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.core.clock import now
from careloop.outreach.channels.email import _html_from_text
from careloop.outreach.models import MessageTemplate
from careloop.outreach.outbox import Rendered
from careloop.outreach.placeholders import (
    PLACEHOLDERS,
    STRAY_SYNTAX,
    TOKEN,
    RenderContext,
    TemplateRenderError,
    fill,
    placeholders_in,
    primary_language,
    render_context,
    sample_context,
)
from careloop.outreach.sms_length import sms_length
from careloop.patients.models import Patient
from careloop.security.audit import audit_record
from careloop.security.models import User
from careloop.security.permissions import Op, Resource, require

__all__ = [
    "RenderContext",
    "TemplateMissing",
    "TemplateRejected",
    "TemplateRenderError",
    "render_context",
    "template_for",
    "template_lint",
    "template_preview",
    "template_render",
    "template_save",
    "templates_install_builtin",
]

logger = logging.getLogger(__name__)

G, L, S = ContentClass.GENERIC, ContentClass.LOGISTICS, ContentClass.SENSITIVE
RANK = {G: 0, L: 1, S: 2}
# The most revealing class each channel may carry (careloop.consent.decisions agrees).
CHANNEL_CEILING = {
    Channel.SMS: L,
    Channel.EMAIL: L,
    Channel.VOICE: L,
    Channel.PUSH: G,
    Channel.PORTAL: S,
}
# Channels whose template has a subject: the e-mail subject, the push title, the
# portal inbox line.
SUBJECT_CHANNELS = frozenset({Channel.EMAIL, Channel.PUSH, Channel.PORTAL})
SCRIPT = re.compile(r"<\s*script\b", re.IGNORECASE)
KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")


# --- the linter ---------------------------------------------------------------------------


class Lint(enum.StrEnum):
    UNKNOWN_CHANNEL = "unknown_channel"
    UNKNOWN_CONTENT_CLASS = "unknown_content_class"
    BODY_REQUIRED = "body_required"
    UNKNOWN_PLACEHOLDER = "unknown_placeholder"
    MALFORMED_PLACEHOLDER = "malformed_placeholder"
    PLACEHOLDER_ABOVE_CLASS = "placeholder_above_class"
    SENSITIVE_OFF_PORTAL = "sensitive_off_portal"
    CLASS_ABOVE_CHANNEL = "class_above_channel"
    SMS_TOO_LONG = "sms_too_long"
    SUBJECT_REQUIRED = "subject_required"
    SUBJECT_UNUSED = "subject_unused"
    HTML_UNUSED = "html_unused"
    HTML_SCRIPT = "html_script"
    BAD_KEY = "bad_key"
    BAD_LANGUAGE = "bad_language"
    UNKNOWN_PURPOSE = "unknown_purpose"


def _reason(code: Lint, text: str) -> str:
    return f"{code}: {text}"


def _syntax_reasons(part: str, text: str, template_class: ContentClass) -> list[str]:
    reasons = []
    for name in placeholders_in(text):
        placeholder = PLACEHOLDERS.get(name)
        if placeholder is None:
            reasons.append(
                _reason(
                    Lint.UNKNOWN_PLACEHOLDER,
                    f"{{{{ {name} }}}} in the {part} is not a placeholder (no filters or "
                    "logic; see docs/outreach-templates.md)",
                )
            )
        elif RANK[placeholder.content_class] > RANK[template_class]:
            reasons.append(
                _reason(
                    Lint.PLACEHOLDER_ABOVE_CLASS,
                    f"{{{{ {name} }}}} in the {part} is {placeholder.content_class}; a "
                    f"{template_class} template may not use it",
                )
            )
    if STRAY_SYNTAX.search(TOKEN.sub("", text)):
        reasons.append(
            _reason(Lint.MALFORMED_PLACEHOLDER, f"the {part} has a stray {{{{, }}}} or {{%")
        )
    return reasons


def _class_reasons(channel: Channel, content_class: ContentClass) -> list[str]:
    if content_class == S and channel != Channel.PORTAL:
        return [
            _reason(
                Lint.SENSITIVE_OFF_PORTAL,
                f"sensitive content goes only to the secure portal, not by {channel}",
            )
        ]
    ceiling = CHANNEL_CEILING[channel]
    if RANK[content_class] > RANK[ceiling]:
        return [
            _reason(
                Lint.CLASS_ABOVE_CHANNEL,
                f"{channel} carries {ceiling} content at most, not {content_class}",
            )
        ]
    return []


def _sms_reasons(body: str, language: str) -> list[str]:
    limit = settings.OUTREACH_SMS_MAX_SEGMENTS
    longest = fill(body, sample_context(language, long=True), language)
    length = sms_length(longest)
    if length.segments <= limit:
        return []
    return [
        _reason(
            Lint.SMS_TOO_LONG,
            f"with long sample values the text is {length.segments} {length.encoding} "
            f"segments ({length.units} units); the limit is {limit}",
        )
    ]


def template_lint(
    *,
    channel: str,
    content_class: str,
    subject: str,
    body: str,
    body_html: str,
    language: str = "en",
) -> list[str]:
    """Why this template may not be saved ("code: words"); empty when it may."""
    if channel not in Channel.values:
        return [_reason(Lint.UNKNOWN_CHANNEL, f"{channel!r} is not a channel")]
    if content_class not in ContentClass.values:
        return [_reason(Lint.UNKNOWN_CONTENT_CLASS, f"{content_class!r} is not a content class")]
    declared = ContentClass(content_class)
    reasons = [] if body.strip() else [_reason(Lint.BODY_REQUIRED, "the text is empty")]
    for part, text in (("subject", subject), ("text", body), ("HTML", body_html)):
        reasons += _syntax_reasons(part, text, declared)
    reasons += _class_reasons(Channel(channel), declared)
    if channel == Channel.SMS and not any(r.startswith(Lint.UNKNOWN_PLACEHOLDER) for r in reasons):
        reasons += _sms_reasons(body, language)
    if channel == Channel.EMAIL and not subject.strip():
        reasons.append(_reason(Lint.SUBJECT_REQUIRED, "an e-mail needs a subject"))
    if channel not in SUBJECT_CHANNELS and subject.strip():
        reasons.append(_reason(Lint.SUBJECT_UNUSED, f"{channel} has no subject"))
    if channel != Channel.EMAIL and body_html.strip():
        reasons.append(_reason(Lint.HTML_UNUSED, f"only e-mail has an HTML part, not {channel}"))
    if SCRIPT.search(body_html):
        reasons.append(_reason(Lint.HTML_SCRIPT, "the HTML part may not contain <script>"))
    return reasons


# --- saving and finding -------------------------------------------------------------------


class TemplateRejected(ValueError):
    """The linter's reasons, as a list a form can show one by one."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class TemplateMissing(LookupError):
    """No active version of a template in the patient's language or the default one."""


def _identity_reasons(*, key: str, language: str, purpose: str) -> list[str]:
    reasons = []
    if not KEY.match(key) or len(key) > 80:
        reasons.append(_reason(Lint.BAD_KEY, f"{key!r} is not a lowercase slug (up to 80)"))
    if not LANGUAGE.match(language):
        reasons.append(_reason(Lint.BAD_LANGUAGE, f"{language!r} is not a tag like en or es-mx"))
    if purpose not in Purpose.values:
        reasons.append(_reason(Lint.UNKNOWN_PURPOSE, f"{purpose!r} is not a purpose"))
    return reasons


def _write_version(template: MessageTemplate) -> MessageTemplate:
    """Add `template` as the next version of its (key, channel, language) and make it
    the active one. The caller holds a transaction; the versions' row locks order two
    editors of one template (two first versions at once: the unique version refuses
    the second)."""
    versions = MessageTemplate.objects.select_for_update().filter(
        key=template.key, channel=template.channel, language=template.language
    )
    last = max(versions.values_list("version", flat=True), default=0)
    # Deactivate first: the one-active constraint holds at every statement.
    versions.filter(active=True).update(active=False)
    template.version, template.active = last + 1, True
    template.save(force_insert=True)
    return template


def template_save(
    *,
    key: str,
    channel: str,
    language: str,
    purpose: str,
    content_class: str,
    subject: str,
    body: str,
    body_html: str = "",
    expects_reply: bool = False,
    actor: User | None = None,
) -> MessageTemplate:
    """Save an edit as a new active version; raise `TemplateRejected` with the reasons.

    `actor` is the staff user (configuration write, audited); None is the system.
    """
    if actor is not None:
        # Outside the transaction: a refusal's audit event must not roll back with it.
        require(actor, Op.WRITE, Resource.CONFIG)
    language = language.lower()
    reasons = _identity_reasons(key=key, language=language, purpose=purpose)
    reasons += template_lint(
        channel=channel,
        content_class=content_class,
        subject=subject,
        body=body,
        body_html=body_html,
        language=language,
    )
    if reasons:
        raise TemplateRejected(reasons)
    with transaction.atomic():
        template = _write_version(
            MessageTemplate(
                id=uuid.uuid4(),
                key=key,
                channel=channel,
                language=language,
                purpose=purpose,
                content_class=content_class,
                subject=subject,
                body=body,
                body_html=body_html,
                expects_reply=expects_reply,
                created_at=now(),
                created_by=actor,
            )
        )
        if actor is not None:
            audit_record(
                action="config.change",
                actor=actor,
                resource_type="message_template",
                resource_id=str(template.id),
                fields=("subject", "body", "body_html", "content_class", "purpose"),
            )
    return template


def template_for(key: str, channel: str, language: str) -> tuple[MessageTemplate, bool]:
    """The active version in `language` (or its primary language: es-MX reads es), else
    in settings.PRACTICE_DEFAULT_LANGUAGE; the flag says it fell back."""
    default = settings.PRACTICE_DEFAULT_LANGUAGE.lower()
    wanted = (language or default).lower()
    order = list(dict.fromkeys((wanted, primary_language(wanted), default)))
    found = {
        t.language: t
        for t in MessageTemplate.objects.filter(
            key=key, channel=channel, language__in=order, active=True
        )
    }
    for candidate in order:
        if candidate in found:
            return found[candidate], primary_language(candidate) != primary_language(wanted)
    raise TemplateMissing(
        f"no active template {key!r} for {channel} in {wanted!r} or the default {default!r}"
    )


def template_render(template: MessageTemplate, context: RenderContext) -> Rendered:
    """The message for one patient, worded in the template's language.

    Raise `TemplateRenderError` naming every placeholder the context cannot fill (a
    reminder without its appointment); nothing half-filled is ever returned.
    """
    language, channel, missing = template.language, Channel(template.channel), set[str]()
    body = fill(template.body, context, language, missing=missing)
    subject = None
    if channel in SUBJECT_CHANNELS and template.subject.strip():
        subject = fill(template.subject, context, language, one_line=True, missing=missing)
    body_html = None
    if channel == Channel.EMAIL:
        body_html = (
            fill(template.body_html, context, language, escape=True, missing=missing)
            if template.body_html.strip()
            else _html_from_text(body)
        )
    if missing:
        raise TemplateRenderError(
            f"template {template} needs {', '.join(sorted(missing))}; the context has none"
        )
    return Rendered(body=body, subject=subject, body_html=body_html)


def template_preview(
    template: MessageTemplate, patient: Patient | None = None, *, actor: User | None = None
) -> Rendered:
    """The template filled with samples, or with a real patient's values (samples for
    what the patient has none of: an appointment, a gap). `actor` is the staff user
    previewing a real patient: their read is checked and audited."""
    context = sample_context(template.language)
    if patient is not None:
        if actor is not None:
            require(actor, Op.READ, Resource.DEMOGRAPHICS, patient_id=patient.pk)
            audit_record(
                action="patient.view",
                actor=actor,
                patient_id=patient.pk,
                resource_type="message_template",
                resource_id=str(template.id),
                fields=("given_name", "preferred_name"),
            )
        real = render_context(patient, language=template.language)
        context = dataclasses.replace(context, values={**context.values, **real.values})
    return template_render(template, context)


# --- the built-ins ------------------------------------------------------------------------


def templates_install_builtin(*, using: str = "default") -> int:
    """Create each built-in (key, channel, language) that has no version at all; how
    many were created. An admin's edit is never overwritten: a combination with any
    version, active or not, is left alone."""
    from careloop.outreach.builtin_templates import BUILTIN_TEMPLATES

    if MessageTemplate._meta.db_table not in connections[using].introspection.table_names():
        return 0  # migrating backwards past the templates table
    have = set(
        MessageTemplate.objects.using(using).values_list("key", "channel", "language").distinct()
    )
    created = []
    for spec in BUILTIN_TEMPLATES:
        if (spec.key, spec.channel, spec.language) in have:
            continue
        reasons = template_lint(
            channel=spec.channel,
            content_class=spec.content_class,
            subject=spec.subject,
            body=spec.body,
            body_html=spec.body_html,
            language=spec.language,
        )
        if reasons:
            # A setting (a lower SMS segment limit) can make a shipped text too long;
            # the rest still install, and template_for says clearly what is missing.
            codes = ", ".join(r.split(":")[0] for r in reasons)
            logger.warning(
                "built-in template %s/%s/%s not installed: %s",
                spec.key,
                spec.channel,
                spec.language,
                codes,
            )
            continue
        created.append(
            MessageTemplate(
                id=uuid.uuid4(),
                version=1,
                active=True,
                built_in=True,
                created_at=now(),
                **dataclasses.asdict(spec),
            )
        )
    with transaction.atomic(using=using):
        # ignore_conflicts: a second process installing at once adds nothing twice.
        MessageTemplate.objects.using(using).bulk_create(created, ignore_conflicts=True)
    return len(created)
