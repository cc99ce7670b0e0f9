"""Words that templates fill in per language: dates, clock times and care-gap measures.

Kept as plain tables, not gettext catalogues, so a message reads the same on every
host whatever locales it has installed, and a test can read the exact words.
A language without an entry here is written with the English words.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class DateWords:
    weekdays: tuple[str, ...]  # Monday first, as datetime.weekday() counts
    months: tuple[str, ...]
    # "{weekday}", "{day}" and "{month}" are filled in.
    date: str
    clock_24h: bool


DATE_WORDS: dict[str, DateWords] = {
    "en": DateWords(
        weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        months=(
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
        date="{weekday}, {month} {day}",
        clock_24h=False,
    ),
    "es": DateWords(
        weekdays=("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
        months=(
            "enero",
            "febrero",
            "marzo",
            "abril",
            "mayo",
            "junio",
            "julio",
            "agosto",
            "septiembre",
            "octubre",
            "noviembre",
            "diciembre",
        ),
        date="{weekday} {day} de {month}",
        clock_24h=True,
    ),
}


def words_for(language: str) -> DateWords:
    return DATE_WORDS.get(language.split("-")[0].lower(), DATE_WORDS["en"])


def format_weekday(local: datetime.datetime, language: str) -> str:
    return words_for(language).weekdays[local.weekday()]


def format_date(local: datetime.datetime, language: str) -> str:
    """ "Tuesday, June 16" / "martes 16 de junio": the wall-clock date of `local`."""
    words = words_for(language)
    return words.date.format(
        weekday=words.weekdays[local.weekday()], day=local.day, month=words.months[local.month - 1]
    )


def format_time(local: datetime.datetime, language: str) -> str:
    """ "2:30 PM" / "14:30": the wall-clock time of `local`."""
    if words_for(language).clock_24h:
        return f"{local.hour}:{local.minute:02d}"
    hour = local.hour % 12 or 12
    return f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


# What a patient is due for, per measure id (careloop.caregaps.measures), in words a
# patient reads after "you are due for" / "ya le toca". Staff-facing titles name the
# specification ("Diabetes: Glycemic Status Assessment Greater Than 9%"); these name
# the visit or test. Only the secure portal ever shows them (class sensitive).
MEASURE_WORDS: dict[str, dict[str, str]] = {
    "CMS2": {"en": "a depression screening", "es": "una evaluación de depresión"},
    "CMS69": {
        "en": "a body mass index (BMI) check",
        "es": "una medición del índice de masa corporal",
    },
    "CMS117": {
        "en": "the childhood vaccine series",
        "es": "la serie de vacunas infantiles",
    },
    "CMS122": {"en": "an A1c test for diabetes", "es": "una prueba de A1c para la diabetes"},
    "CMS124": {
        "en": "cervical cancer screening",
        "es": "la detección del cáncer de cuello uterino",
    },
    "CMS125": {
        "en": "a mammogram (breast cancer screening)",
        "es": "una mamografía (detección del cáncer de mama)",
    },
    "CMS130": {
        "en": "colorectal cancer screening",
        "es": "la detección del cáncer colorrectal",
    },
    "CMS138": {
        "en": "a check-in about tobacco use",
        "es": "una conversación sobre el consumo de tabaco",
    },
    "CMS165": {"en": "a blood pressure check", "es": "un control de la presión arterial"},
    "AWV": {"en": "your annual wellness visit", "es": "su visita anual de bienestar"},
    "DM-EYE": {
        "en": "a diabetic eye exam",
        "es": "un examen de la vista para personas con diabetes",
    },
    "DM-KIDNEY": {
        "en": "a kidney health check (blood and urine tests)",
        "es": "un control de la salud de los riñones (análisis de sangre y orina)",
    },
    "FLU": {"en": "a flu shot", "es": "la vacuna contra la gripe"},
}
