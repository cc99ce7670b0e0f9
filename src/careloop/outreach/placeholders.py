"""Placeholders: what a template may say, how revealing each is, and where the values
come from.

`{{ name.part }}` is the whole syntax. Each placeholder has a content class, a sample
for previews and a long sample for the SMS length check (careloop.outreach.templates).
`render_context` gathers one patient's values from careloop's own rows; dates and
measure words are worded at render time in the template's language.
"""

from __future__ import annotations

import datetime
import html
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

from careloop.caregaps.measure import measure_get
from careloop.caregaps.models import CareGap
from careloop.consent.models import ContentClass
from careloop.outreach.links import portal_url
from careloop.outreach.template_words import (
    MEASURE_WORDS,
    format_date,
    format_time,
    format_weekday,
)
from careloop.patients.models import Patient
from careloop.scheduling.models import Appointment

G, L, S = ContentClass.GENERIC, ContentClass.LOGISTICS, ContentClass.SENSITIVE


class TemplateRenderError(ValueError):
    """A placeholder the context has no value for (names placeholders, never values)."""


# --- placeholders -------------------------------------------------------------------------


@dataclass(frozen=True)
class Placeholder:
    name: str
    content_class: ContentClass
    description: str
    # Per language: (a typical value for previews, a long one for the SMS length check).
    # "en" is required; other languages fall back to it.
    samples: Mapping[str, tuple[str, str]]

    def sample(self, language: str, *, long: bool = False) -> str:
        typical, longest = self.samples.get(primary_language(language), self.samples["en"])
        return longest if long else typical


def _p(
    name: str, cls: ContentClass, description: str, en: tuple[str, str], **other: tuple[str, str]
) -> Placeholder:
    return Placeholder(name, cls, description, {"en": en, **other})


def _link(part: str, description: str) -> Placeholder:
    base = "https://riverbend-health.example"
    return _p(
        f"link.{part}",
        G,
        description,
        (f"{base}/{part[0]}/Q2h7Zx", f"{base}/{part}/Q2h7Zx9KpW3mT4vB8nLc"),
    )


def _longest_measure(language: str) -> str:
    return max((words[language] for words in MEASURE_WORDS.values()), key=len)


PLACEHOLDERS: dict[str, Placeholder] = {
    p.name: p
    for p in (
        _p(
            "patient.first_name",
            G,
            "The patient's preferred name, else their given name",
            ("Rosa", "Mary-Elizabeth"),
            es=("Rosa", "María Fernanda"),
        ),
        _p(
            "practice.name",
            G,
            "settings.PRACTICE_NAME",
            ("Riverbend Family Health", "Riverbend Family Health & Wellness"),
        ),
        _p(
            "practice.phone",
            G,
            "settings.PRACTICE_PHONE",
            ("(555) 010-0100", "(555) 010-0100 ext. 2045"),
        ),
        _link("portal", "The patient portal"),
        _link("unsubscribe", "Where a patient stops a kind of message"),
        _link("reschedule", "Book or rebook an appointment (signed when it names one)"),
        _link("confirm", "Confirm the appointment (signed)"),
        _link("form", "A form to fill in (intake, consents, pre-registration, survey)"),
        _link("join", "Join a telehealth visit"),
        _link("signin", "A one-time portal sign-in link (careloop.portal; 15 minutes)"),
        _p(
            "portal.code",
            G,
            "A one-time portal verification code (careloop.portal; 15 minutes)",
            ("482913", "482913"),
        ),
        _p(
            "appointment.date",
            L,
            "The visit's date at the location's time zone",
            ("Tuesday, June 16", "Wednesday, September 30"),
            es=("martes 16 de junio", "miércoles 30 de septiembre"),
        ),
        _p(
            "appointment.time",
            L,
            "The visit's local time",
            ("2:30 PM", "12:30 PM"),
            es=("14:30", "14:30"),
        ),
        _p(
            "appointment.weekday",
            L,
            "The visit's weekday",
            ("Tuesday", "Wednesday"),
            es=("martes", "miércoles"),
        ),
        _p(
            "appointment.location",
            L,
            "The location's name",
            ("Riverbend Main Clinic", "Riverbend North Campus Family Medicine"),
        ),
        _p(
            "appointment.address",
            L,
            "The location's street address",
            (
                "100 River Rd, Springfield IL",
                "2450 North Riverside Parkway, Suite 310, Springfield, IL 62704",
            ),
        ),
        _p(
            "appointment.directions",
            L,
            "Directions and parking at the location",
            (
                "Park in the Oak Street garage; we are on the 2nd floor.",
                "Enter from Oak Street and park free on level 2 of the garage; take the east"
                " elevators to the 3rd floor, suite 310.",
            ),
        ),
        _p(
            "appointment.provider",
            L,
            "The provider's display name",
            ("Dr. Maya Chen", "Dr. Alexandra Montgomery-Fitzgerald"),
        ),
        _p(
            "appointment.type",
            L,
            "The appointment type's name",
            ("Follow-up visit", "Annual physical and preventive care visit"),
        ),
        _p(
            "form.name",
            L,
            "The name of a form to fill in",
            ("New patient intake form", "New patient health history questionnaire"),
        ),
        _p(
            "gap.measure",
            S,
            "What a care gap is for, in patient words (template_words.MEASURE_WORDS)",
            (MEASURE_WORDS["CMS130"]["en"], _longest_measure("en")),
            es=(MEASURE_WORDS["CMS130"]["es"], _longest_measure("es")),
        ),
        _p(
            "condition.name",
            S,
            "A condition on the problem list",
            ("type 2 diabetes", "chronic obstructive pulmonary disease"),
            es=("diabetes tipo 2", "enfermedad pulmonar obstructiva crónica"),
        ),
        _p(
            "medication.name",
            S,
            "A medication",
            ("metformin 500 mg", "insulin glargine 100 units/mL pen"),
            es=("metformina 500 mg", "insulina glargina 100 unidades/mL"),
        ),
        _p(
            "result.name",
            S,
            "A test result's name",
            ("hemoglobin A1c", "comprehensive metabolic panel"),
            es=("hemoglobina A1c", "panel metabólico completo"),
        ),
    )
}

# `{{ name }}`, spaces optional inside; what is inside is checked against the registry.
TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# What is left of template syntax once the placeholders are taken out.
STRAY_SYNTAX = re.compile(r"\{\{|\}\}|\{%|%\}")


def primary_language(language: str) -> str:
    """The language a tag's words are written in: "es" for "es-MX"."""
    return language.split("-")[0].lower()


def placeholders_in(text: str) -> list[str]:
    """The placeholder names in `text`, in order of first use (unknown ones included)."""
    return list(dict.fromkeys(TOKEN.findall(text)))


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderContext:
    """What a template is filled with, for one patient (class I: it may hold a name).

    Dates, times and measure words are kept as their source (the appointment's local
    start, the measure id) and worded in the language of the template being rendered,
    which may be the fallback language rather than the patient's.
    """

    language: str
    values: Mapping[str, str] = field(default_factory=dict, repr=False)
    appointment_start: datetime.datetime | None = field(default=None, repr=False)
    measure: str | None = None

    def value(self, name: str, language: str) -> str | None:
        if self.appointment_start is not None:
            if name == "appointment.date":
                return format_date(self.appointment_start, language)
            if name == "appointment.time":
                return format_time(self.appointment_start, language)
            if name == "appointment.weekday":
                return format_weekday(self.appointment_start, language)
        if name == "gap.measure" and self.measure is not None:
            return _measure_words(self.measure, language)
        return self.values.get(name)


def _measure_words(measure_id: str, language: str) -> str:
    words = MEASURE_WORDS.get(measure_id.upper())
    if words is None:
        return measure_get(measure_id).title
    return words.get(primary_language(language), words["en"])


def sample_context(language: str, *, long: bool = False) -> RenderContext:
    """Every placeholder filled with its sample (previews) or long sample (the SMS
    check); the practice's own name and phone in previews."""
    values = {name: p.sample(language, long=long) for name, p in PLACEHOLDERS.items()}
    if not long:
        values["practice.name"] = settings.PRACTICE_NAME
        values["practice.phone"] = settings.PRACTICE_PHONE
    return RenderContext(language=language, values=values)


def render_context(
    patient: Patient,
    *,
    appointment: Appointment | None = None,
    gap: CareGap | str | None = None,
    links: Mapping[str, str] | None = None,
    language: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> RenderContext:
    """The values for `patient`: `gap` is a care gap or, for one not open yet (due
    soon), a measure id; `links` maps link parts ("reschedule") to URLs; `extra` gives
    values no careloop object here holds (condition.name, medication.name,
    result.name, form.name)."""
    values = {
        "patient.first_name": patient.preferred_name or patient.given_name,
        "practice.name": settings.PRACTICE_NAME,
        "practice.phone": settings.PRACTICE_PHONE,
        "link.portal": portal_url(),
    }
    for part, url in (links or {}).items():
        values[f"link.{part}"] = url
    start = None
    if appointment is not None:
        location = appointment.location
        start = appointment.start.astimezone(zoneinfo.ZoneInfo(location.time_zone))
        values |= {
            "appointment.location": location.name,
            "appointment.address": location.address,
            "appointment.directions": location.directions,
            "appointment.provider": appointment.provider.display_name,
            "appointment.type": appointment.appointment_type.name,
        }
    values |= extra or {}
    unknown = sorted(set(values) - set(PLACEHOLDERS))
    if unknown:
        raise ValueError(f"not placeholders: {', '.join(unknown)}")
    return RenderContext(
        language=language or patient.preferred_language,
        values=values,
        appointment_start=start,
        measure=gap.measure if isinstance(gap, CareGap) else gap,
    )


def fill(
    text: str,
    context: RenderContext,
    language: str,
    *,
    escape: bool = False,
    one_line: bool = False,
    missing: set[str] | None = None,
) -> str:
    """`text` with its placeholders filled; a missing value raises, or is collected
    in `missing`. One pass: a value is never read again for placeholders (a name may
    hold "{{")."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = context.value(name, language)
        if found is None:
            if missing is None:
                raise TemplateRenderError(f"no value for {{{{ {name} }}}}")
            missing.add(name)
            return ""
        if one_line:
            found = " ".join(found.split())
        return html.escape(found) if escape else found

    return TOKEN.sub(value, text)
