"""Message templates: the linter, SMS segments, versions, language fallback, rendering
and the built-ins, through careloop.outreach.templates on a real database."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from careloop.caregaps.measure import measures
from careloop.caregaps.models import CareGap
from careloop.consent.models import Channel, ContentClass, Purpose
from careloop.core import clock
from careloop.core.errors import PermissionDenied
from careloop.outreach.builtin_templates import BUILTIN_TEMPLATES
from careloop.outreach.inbound import classify
from careloop.outreach.models import InboundKind, MessageTemplate
from careloop.outreach.placeholders import PLACEHOLDERS
from careloop.outreach.sms_length import sms_length
from careloop.outreach.template_words import MEASURE_WORDS
from careloop.outreach.templates import (
    Lint,
    TemplateMissing,
    TemplateRejected,
    TemplateRenderError,
    render_context,
    template_for,
    template_lint,
    template_preview,
    template_render,
    template_save,
    templates_install_builtin,
)
from careloop.patients.models import Patient
from careloop.scheduling.models import Appointment
from careloop.security.models import AuditEvent
from tests.patients.builders import add_appointment, make_location, make_provider, make_user
from tests.patients.builders import make_patient as build_patient

pytestmark = pytest.mark.django_db

REMINDER = "{{ practice.name }}: see you {{ appointment.date }} at {{ appointment.time }}."


def codes(reasons: list[str]) -> list[str]:
    return [reason.split(":")[0] for reason in reasons]


def lint(channel: str, content_class: str, body: str, **parts: str) -> list[str]:
    return codes(
        template_lint(
            channel=channel,
            content_class=content_class,
            subject=parts.get("subject", ""),
            body=body,
            body_html=parts.get("body_html", ""),
            language=parts.get("language", "en"),
        )
    )


def save(**fields: Any) -> MessageTemplate:
    values: dict[str, Any] = {
        "key": "test-reminder",
        "channel": Channel.SMS,
        "language": "en",
        "purpose": Purpose.APPOINTMENT,
        "content_class": ContentClass.LOGISTICS,
        "subject": "",
        "body": REMINDER,
    }
    return template_save(**(values | fields))


def make_patient(**fields: Any) -> Patient:
    return build_patient("Rosa", "Delgado", datetime.date(1961, 4, 2), **fields)


def appointment_at(patient: Patient, start: datetime.datetime) -> Appointment:
    """An appointment at the Riverbend clinic, which keeps Chicago time."""
    return add_appointment(patient, make_provider(make_location()), start)


# --- the linter ---------------------------------------------------------------------------


def test_the_linter_blocks_a_diagnosis_placeholder_in_an_sms_template() -> None:
    body = "{{ practice.name }}: your {{ condition.name }} check-in is due."
    assert lint("sms", "generic", body) == [Lint.PLACEHOLDER_ABOVE_CLASS]
    assert lint("sms", "logistics", body) == [Lint.PLACEHOLDER_ABOVE_CLASS]
    # Declaring the template sensitive does not help: sensitive stays in the portal.
    assert lint("sms", "sensitive", body) == [Lint.SENSITIVE_OFF_PORTAL]

    with pytest.raises(TemplateRejected) as refused:
        save(body=body, content_class="generic")
    assert codes(refused.value.reasons) == [Lint.PLACEHOLDER_ABOVE_CLASS]
    assert "{{ condition.name }} in the text is sensitive" in refused.value.reasons[0]
    assert not MessageTemplate.objects.filter(key="test-reminder").exists()


def test_a_sensitive_template_is_refused_on_email_and_allowed_in_the_portal() -> None:
    body = "Our records show you are due for {{ gap.measure }}."
    assert lint("email", "sensitive", body, subject="A reminder") == [Lint.SENSITIVE_OFF_PORTAL]
    assert lint("portal", "sensitive", body) == []


@pytest.mark.parametrize(
    ("placeholder", "part"),
    [("result.name", "subject"), ("medication.name", "body_html"), ("gap.measure", "body")],
)
def test_every_part_of_an_email_is_held_to_the_class(placeholder: str, part: str) -> None:
    parts = {"subject": "Hello", "body": "Hello", "body_html": ""}
    parts[part] += f" {{{{ {placeholder} }}}}"
    assert lint("email", "logistics", **parts) == [Lint.PLACEHOLDER_ABOVE_CLASS]


def test_voice_carries_logistics_at_most_and_push_generic_only() -> None:
    assert lint("voice", "logistics", "Your visit is {{ appointment.date }}.") == []
    assert lint("push", "logistics", "Your visit is soon.") == [Lint.CLASS_ABOVE_CHANNEL]
    assert lint("push", "generic", "Visit {{ appointment.location }}") == [
        Lint.PLACEHOLDER_ABOVE_CLASS
    ]
    assert lint("push", "generic", "A new secure message from {{ practice.name }}.") == []


def test_unknown_placeholders_filters_and_template_logic_are_refused() -> None:
    assert lint("sms", "generic", "Hi {{ patient.last_name }}") == [Lint.UNKNOWN_PLACEHOLDER]
    assert lint("sms", "generic", "Hi {{ patient.first_name|upper }}") == [Lint.UNKNOWN_PLACEHOLDER]
    assert lint("sms", "generic", "{% if x %}Hi{% endif %}") == [Lint.MALFORMED_PLACEHOLDER]
    assert lint("sms", "generic", "Hi {{ patient.first_name }") == [Lint.MALFORMED_PLACEHOLDER]
    assert lint("sms", "generic", "Hi {{patient.first_name}}") == [], "spaces are optional"


def test_email_needs_a_subject_and_an_html_part_without_script() -> None:
    assert lint("email", "generic", "Hello") == [Lint.SUBJECT_REQUIRED]
    html = "<p>Hello</p><SCRIPT src=x></SCRIPT>"
    assert lint("email", "generic", "Hello", subject="Hi", body_html=html) == [Lint.HTML_SCRIPT]
    assert lint("sms", "generic", "Hello", subject="Hi") == [Lint.SUBJECT_UNUSED]
    assert lint("sms", "generic", "Hello", body_html="<p>Hello</p>") == [Lint.HTML_UNUSED]
    assert lint("sms", "generic", "  ") == [Lint.BODY_REQUIRED]


def test_a_refused_save_names_every_reason_and_bad_keys_and_languages() -> None:
    with pytest.raises(TemplateRejected) as refused:
        save(key="Bad Key", language="español", channel="email", body="{{ nope.x }}")
    assert codes(refused.value.reasons) == [
        Lint.BAD_KEY,
        Lint.BAD_LANGUAGE,
        Lint.UNKNOWN_PLACEHOLDER,
        Lint.SUBJECT_REQUIRED,
    ]


# --- SMS segments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        # Extension characters take two septets...
        ("€" * 80, "GSM-7", 160, 1),
        ("[" * 81, "GSM-7", 162, 2),
        # ... and an escape pair is never split between two parts.
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),
        ("á" * 70, "UCS-2", 70, 1),
        ("á" * 71, "UCS-2", 71, 2),
        ("á" * 134, "UCS-2", 134, 2),
        ("á" * 135, "UCS-2", 135, 3),
        # An emoji is a surrogate pair: two units, kept in one part.
        ("😀" * 35, "UCS-2", 70, 1),
        ("a" * 66 + "😀" + "a" * 66, "UCS-2", 134, 3),
        ("", "GSM-7", 0, 0),
    ],
    ids=lambda value: f"{len(value)}-chars" if isinstance(value, str) and len(value) > 8 else None,
)
def test_segments_are_counted_as_carriers_count_them(
    text: str, encoding: str, units: int, segments: int
) -> None:
    length = sms_length(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Su cita es pasado mañana; ¡gracias!", "GSM-7"),  # ñ, ¡ and é are in GSM-7
        ("Le esperamos el miércoles.", "GSM-7"),
        ("Su cita es el sábado.", "UCS-2"),  # á is not
        ("¿Cómo fue su visita?", "UCS-2"),  # nor ó
        ("Your visit is on Tuesday’s list", "UCS-2"),  # a curly apostrophe
    ],
)
def test_one_spanish_accent_outside_gsm_switches_the_whole_text_to_ucs2(
    text: str, encoding: str
) -> None:
    assert sms_length(text).encoding == encoding


def test_an_sms_that_is_too_long_with_long_samples_is_refused(settings: Any) -> None:
    settings.OUTREACH_SMS_MAX_SEGMENTS = 1
    # About 100 characters of GSM-7 with the long samples: fits one segment of 160.
    short = "{{ practice.name }}: your visit is {{ appointment.date }} at {{ appointment.time }}."
    assert lint("sms", "logistics", short) == []
    # The same words in Spanish: "miércoles" is GSM-7, but "día" is not, and UCS-2
    # holds only 70 per segment.
    spanish = (
        "{{ practice.name }}: su cita es el día {{ appointment.date }} a las "
        "{{ appointment.time }}."
    )
    reasons = template_lint(
        channel="sms",
        content_class="logistics",
        subject="",
        body=spanish,
        body_html="",
        language="es",
    )
    assert codes(reasons) == [Lint.SMS_TOO_LONG]
    assert "2 UCS-2 segments" in reasons[0]


# --- versions and languages ---------------------------------------------------------------


def test_saving_an_edit_adds_a_version_and_keeps_one_active() -> None:
    first = save()
    second = save(body="{{ practice.name }}: your visit is {{ appointment.date }}.")
    other_language = save(language="es", body="{{ practice.name }}: su cita es pronto.")

    versions = MessageTemplate.objects.filter(key="test-reminder", language="en")
    assert [(t.version, t.active) for t in versions] == [(2, True), (1, False)]
    assert (first.version, second.version, other_language.version) == (1, 2, 1)
    assert template_for("test-reminder", "sms", "en") == (second, False)
    first.refresh_from_db()
    assert first.body == REMINDER, "an old version is kept as it was sent"


def test_a_staff_save_is_audited_and_needs_configuration_rights() -> None:
    admin = make_user("admin")
    template = save(actor=admin)
    assert template.created_by == admin
    event = AuditEvent.objects.get(action="config.change", resource_type="message_template")
    assert (event.resource_id, event.actor_id, event.patient_id) == (
        str(template.id),
        str(admin.pk),
        None,
    )

    with pytest.raises(PermissionDenied):
        save(actor=make_user("marketing"))
    assert MessageTemplate.objects.filter(key="test-reminder").count() == 1
    assert AuditEvent.objects.filter(action="access.denied", resource_type="config").exists()


def test_the_patients_language_is_used_and_falls_back_with_a_flag(settings: Any) -> None:
    english = save()
    spanish = save(language="es", body="{{ practice.name }}: su cita es pronto.")
    save(key="english-only")

    assert template_for("test-reminder", "sms", "es") == (spanish, False)
    assert template_for("test-reminder", "sms", "es-MX") == (spanish, False)
    assert template_for("test-reminder", "sms", "en-US") == (english, False)
    assert template_for("test-reminder", "sms", "vi") == (english, True)
    assert template_for("english-only", "sms", "es") == (
        MessageTemplate.objects.get(key="english-only"),
        True,
    )
    settings.PRACTICE_DEFAULT_LANGUAGE = "es"
    assert template_for("test-reminder", "sms", "vi") == (spanish, True)


def test_a_template_in_neither_language_is_missing_clearly() -> None:
    save(language="es", body="{{ practice.name }}: su cita es pronto.")
    with pytest.raises(TemplateMissing, match="'test-reminder' for email in 'vi'"):
        template_for("test-reminder", "email", "vi")
    with pytest.raises(TemplateMissing):
        template_for("test-reminder", "sms", "vi")


# --- rendering ----------------------------------------------------------------------------


def test_a_reminder_is_worded_at_the_locations_time_and_in_the_templates_language() -> None:
    # 01:30 UTC on Wednesday is still Tuesday evening in Chicago, where the clinic is,
    # and already Tuesday 21:30 in New York, where the patient lives.
    patient = make_patient(time_zone="America/New_York", preferred_language="es")
    visit = appointment_at(patient, datetime.datetime(2026, 6, 17, 1, 30, tzinfo=datetime.UTC))
    context = render_context(patient, appointment=visit)
    english = save(body=REMINDER + " {{ appointment.weekday }}")
    spanish = save(language="es", body="{{ appointment.date }}, {{ appointment.time }}")

    assert template_render(english, context).body == (
        "Riverbend Family Health: see you Tuesday, June 16 at 8:30 PM. Tuesday"
    )
    assert template_render(spanish, context).body == "martes 16 de junio, 20:30"


def test_render_names_the_patient_by_preferred_name_and_practice_from_settings(
    settings: Any,
) -> None:
    settings.PRACTICE_NAME, settings.PRACTICE_PHONE = "Oakside Clinic", "(555) 010-0199"
    template = save(
        content_class="generic",
        body="Hi {{ patient.first_name }}, {{ practice.name }} {{ practice.phone }} "
        "{{ link.portal }} {{ link.reschedule }}",
    )
    rosie = make_patient(preferred_name="Rosie")
    context = render_context(rosie, links={"reschedule": "https://x.example/r/1"})
    assert template_render(template, context).body.startswith(
        "Hi Rosie, Oakside Clinic (555) 010-0199 https://"
    )
    assert template_render(template, context).body.endswith(" https://x.example/r/1")


def test_a_missing_value_is_an_error_that_names_the_placeholder_not_the_patient() -> None:
    template = save()
    with pytest.raises(TemplateRenderError) as error:
        template_render(template, render_context(make_patient()))
    assert "appointment.date, appointment.time" in str(error.value)
    assert "Rosa" not in str(error.value)


def test_values_are_html_escaped_in_the_html_part_and_not_in_the_text() -> None:
    patient = make_patient(preferred_name="<b>Ro & Sa</b>")
    context = render_context(patient)
    with_html = save(
        channel="email",
        content_class="generic",
        subject="Hello {{ patient.first_name }}",
        body="Hello {{ patient.first_name }}",
        body_html="<p>Hello <i>{{ patient.first_name }}</i></p>",
    )
    rendered = template_render(with_html, context)
    assert rendered.body == "Hello <b>Ro & Sa</b>"
    assert rendered.subject == "Hello <b>Ro & Sa</b>"
    assert rendered.body_html == "<p>Hello <i>&lt;b&gt;Ro &amp; Sa&lt;/b&gt;</i></p>"

    text_only = save(
        key="text-only",
        channel="email",
        content_class="generic",
        subject="Hi",
        body="Hello {{ patient.first_name }}\n\nSee you.",
    )
    made = template_render(text_only, context).body_html or ""
    assert "<p>Hello &lt;b&gt;Ro &amp; Sa&lt;/b&gt;</p><p>See you.</p>" in made


def test_a_value_is_never_read_again_for_placeholders() -> None:
    patient = make_patient(preferred_name="{{ condition.name }}")
    template = save(content_class="generic", body="Hi {{ patient.first_name }}")
    context = render_context(patient, extra={"condition.name": "asthma"})
    assert template_render(template, context).body == "Hi {{ condition.name }}"


def test_a_subject_stays_on_one_line_whatever_the_values_hold() -> None:
    patient = make_patient(preferred_name="Rosa\r\nBcc: someone@example.org")
    template = save(
        channel="email", content_class="generic", subject="Hi {{ patient.first_name }}", body="x"
    )
    assert template_render(template, render_context(patient)).subject == (
        "Hi Rosa Bcc: someone@example.org"
    )


def test_the_measure_is_named_only_in_the_portal_version_of_a_recall() -> None:
    patient = make_patient(preferred_language="es")
    gap = CareGap.objects.create(patient=patient, measure="CMS130", opened_at=clock.now())
    for channel in ("sms", "email", "portal"):
        template, fallback = template_for("gap-recall-overdue", channel, "es")
        context = render_context(
            patient, gap=gap, links={"portal": "https://p.example/"}, language="es"
        )
        rendered = template_render(template, context)
        named = "detección del cáncer colorrectal" in f"{rendered.subject} {rendered.body}"
        assert (named, fallback) == (channel == "portal", False), channel

    english, _ = template_for("gap-recall-before", "portal", "en")
    # A due-soon gap has no row yet: the measure id is enough.
    assert template_render(english, render_context(patient, gap="CMS125")).subject == (
        "Coming up: a mammogram (breast cancer screening)"
    )


def test_every_measure_has_patient_words_in_english_and_spanish() -> None:
    for measure_id in measures():
        assert set(MEASURE_WORDS[measure_id]) >= {"en", "es"}, measure_id


def test_a_preview_uses_samples_or_a_real_patient_with_samples_for_the_rest() -> None:
    template = save(channel="voice", body="Hello {{ patient.first_name }}, " + REMINDER)
    assert template_preview(template).body == (
        "Hello Rosa, Riverbend Family Health: see you Tuesday, June 16 at 2:30 PM."
    )
    spanish = save(language="es", body="{{ patient.first_name }}: {{ appointment.date }}")
    patient = make_patient(preferred_name="Lupita")
    assert template_preview(spanish, patient).body == "Lupita: martes 16 de junio"


def test_previewing_a_real_patient_is_a_checked_and_audited_read() -> None:
    template = save(content_class="generic", body="Hi {{ patient.first_name }}")
    patient = make_patient()
    front_desk = make_user("front_desk")
    assert template_preview(template, patient, actor=front_desk).body == "Hi Rosa"
    assert AuditEvent.objects.filter(
        action="patient.view", patient_id=patient.pk, resource_type="message_template"
    ).exists()
    with pytest.raises(PermissionDenied):
        template_preview(template, patient, actor=make_user("analyst"))


# --- the built-ins ------------------------------------------------------------------------

# The keys and channels the built-in journeys send (careloop.outreach.builtin_journeys).
EXPECTED = {
    "lead-welcome": {"email", "sms"},
    "onboarding-intake": {"email", "sms", "portal"},
    "onboarding-consents": {"email", "sms", "portal"},
    "onboarding-insurance-card": {"email", "sms", "portal"},
    "previsit-7d": {"sms", "email", "voice"},
    "previsit-2d": {"sms", "email", "voice"},
    "previsit-sameday": {"sms", "email"},
    "previsit-preregistration": {"sms", "email"},
    "postvisit-instructions": {"sms", "email", "portal"},
    "postvisit-followup": {"sms", "email"},
    "survey-satisfaction": {"sms", "email"},
    "noshow-reschedule": {"sms", "email"},
    "noshow-followup-7d": {"sms", "email"},
    "gap-recall-before": {"sms", "email", "portal"},
    "gap-recall-due": {"sms", "email", "portal"},
    "gap-recall-overdue": {"sms", "email", "portal"},
    "chronic-checkin": {"sms", "email", "portal"},
    "medication-checkin": {"sms", "email", "portal"},
    "reactivation": {"sms", "email"},
    "secure-message-notice": {"sms", "email", "push"},
    "appointment-confirmed": {"sms"},
    "appointment-cancelled": {"sms"},
    # A booking made in the portal, confirmed once (careloop.portal.booking).
    "appointment-booked": {"sms", "email"},
    "portal-verify-code": {"sms", "email"},
    "portal-signin-link": {"email"},
    # The waitlist's offer and "slot gone" notice (careloop.scheduling.waitlist).
    "waitlist-offer": {"sms", "email"},
    "waitlist-slot-gone": {"sms", "email"},
}


def test_the_built_ins_cover_every_key_and_channel_in_english_and_spanish() -> None:
    for language in ("en", "es"):
        shipped: dict[str, set[str]] = {}
        for spec in BUILTIN_TEMPLATES:
            if spec.language == language:
                shipped.setdefault(spec.key, set()).add(spec.channel)
        assert shipped == EXPECTED, language
    assert len({(t.key, t.channel, t.language) for t in BUILTIN_TEMPLATES}) == len(
        BUILTIN_TEMPLATES
    )


@pytest.mark.parametrize(
    "spec", BUILTIN_TEMPLATES, ids=lambda t: f"{t.key}-{t.channel}-{t.language}"
)
def test_every_built_in_passes_the_linter(spec: Any) -> None:
    assert (
        template_lint(
            channel=spec.channel,
            content_class=spec.content_class,
            subject=spec.subject,
            body=spec.body,
            body_html=spec.body_html,
            language=spec.language,
        )
        == []
    )


def test_confirmation_reminders_ask_for_the_reply_the_inbound_side_understands() -> None:
    for spec in BUILTIN_TEMPLATES:
        if spec.key not in ("previsit-7d", "previsit-2d"):
            continue
        assert spec.expects_reply
        asks = {
            ("sms", "en"): "Reply Y to confirm or N to cancel",
            ("sms", "es"): "Responda C para confirmar o N para cancelar",
            ("voice", "en"): "Press 1 to confirm, press 2 to cancel",
            ("voice", "es"): "Oprima 1 para confirmar, oprima 2 para cancelar",
            ("email", "en"): "{{ link.confirm }}",
            ("email", "es"): "{{ link.confirm }}",
        }[(spec.channel, spec.language)]
        assert asks in spec.body
    # The letters the texts ask for are the ones the inbound side acts on.
    assert [classify(word) for word in ("Y", "C", "N")] == [
        InboundKind.CONFIRM,
        InboundKind.CONFIRM,
        InboundKind.DECLINE,
    ]


def test_no_built_in_outside_the_portal_can_name_a_health_fact() -> None:
    sensitive = {name for name, p in PLACEHOLDERS.items() if p.content_class == "sensitive"}
    for spec in BUILTIN_TEMPLATES:
        if spec.channel != "portal":
            assert spec.content_class != "sensitive"
            assert not any(name in spec.subject + spec.body for name in sensitive), spec.key


def test_built_ins_install_once_and_an_admins_edit_survives() -> None:
    # Installed by post_migrate when the test database was made.
    assert MessageTemplate.objects.filter(built_in=True).count() == len(BUILTIN_TEMPLATES)
    assert templates_install_builtin() == 0

    edit = save(
        key="previsit-7d",
        body="{{ practice.name }}: visit {{ appointment.date }}. Reply Y to confirm.",
        expects_reply=True,
        actor=make_user("admin"),
    )
    assert templates_install_builtin() == 0
    assert template_for("previsit-7d", "sms", "en") == (edit, False)
    assert edit.version == 2 and not edit.built_in
    assert MessageTemplate.objects.filter(key="previsit-7d", channel="sms").count() == 3

    MessageTemplate.objects.exclude(key="previsit-7d").delete()
    kept = sum(spec.key == "previsit-7d" for spec in BUILTIN_TEMPLATES)
    assert templates_install_builtin() == len(BUILTIN_TEMPLATES) - kept
    assert templates_install_builtin() == 0
    assert template_for("previsit-7d", "sms", "en") == (edit, False)


def test_a_built_in_renders_for_a_real_appointment_in_both_languages() -> None:
    patient = make_patient()
    visit = appointment_at(patient, datetime.datetime(2026, 6, 16, 19, 30, tzinfo=datetime.UTC))
    context = render_context(patient, appointment=visit)
    english, _ = template_for("previsit-7d", "sms", "en")
    spanish, _ = template_for("previsit-7d", "sms", "es")
    assert template_render(english, context).body == (
        "Riverbend Family Health: Reminder of your appointment on Tuesday, June 16 at 2:30 PM "
        "at Riverbend Main Clinic. Reply Y to confirm or N to cancel."
    )
    assert template_render(spanish, context).body == (
        "Riverbend Family Health: Le recordamos su cita del martes 16 de junio a las 14:30 en "
        "Riverbend Main Clinic. Responda C para confirmar o N para cancelar."
    )
