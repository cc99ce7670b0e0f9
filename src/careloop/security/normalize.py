"""Normalising class-I values before they are blind-indexed.

Two spellings a person would call "the same" must give the same index: case,
whitespace, accents and punctuation in names; formatting of US phone numbers (stored
as E.164); case and surrounding space in e-mail addresses; ISO dates.
"""

from __future__ import annotations

import datetime
import re
import unicodedata

_NON_NAME = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")
_NON_DIGIT = re.compile(r"\D+")


class NormalizationError(ValueError):
    """The value cannot be normalised (e.g. a phone number with too few digits)."""


def name(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    lowered = _NON_NAME.sub(" ", ascii_only.casefold().replace("'", ""))
    return _SPACES.sub(" ", lowered).strip()


def phone(value: str, *, default_country: str = "1") -> str:
    """E.164 for a phone number; numbers without a country code are taken as US/Canada."""
    text = value.strip()
    digits = _NON_DIGIT.sub("", text)
    if text.startswith("+"):
        if not 8 <= len(digits) <= 15:
            raise NormalizationError("phone number has the wrong number of digits")
        return "+" + digits
    if len(digits) == 10:
        return "+" + default_country + digits
    if len(digits) == 11 and digits.startswith(default_country):
        return "+" + digits
    raise NormalizationError("phone number has the wrong number of digits")


def email(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip().casefold()
    if "@" not in text or text.startswith("@") or text.endswith("@"):
        raise NormalizationError("e-mail address has no domain")
    return text


def identifier(value: str) -> str:
    return _SPACES.sub("", value).upper()


def date(value: datetime.date | str) -> str:
    if isinstance(value, str):
        return datetime.date.fromisoformat(value.strip()).isoformat()
    return value.isoformat()
