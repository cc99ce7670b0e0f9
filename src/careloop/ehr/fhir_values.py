"""Reading FHIR R4 data types out of a parsed resource (a dict from orjson).

Each function takes the JSON as it came and returns a plain Python value, or None/""
when the element is absent or malformed: the record handlers decide whether that is a
reason to reject the resource. Nothing here raises on bad input.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from careloop.core.practice import practice_zone


def items(resource: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The element's list of objects (FHIR repeats), skipping anything that is not one."""
    value = resource.get(key)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def reference_id(value: Any, resource_type: str) -> str | None:
    """The id a Reference names when it names a `resource_type` ("Practitioner/1",
    an absolute URL ending so, or a "urn:uuid:..." whose type the resource implies)."""
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("urn:uuid:"):
        return ref[9:] or None
    head, _, tail = ref.split("/_history", 1)[0].rstrip("/").rpartition("/")
    if head.rpartition("/")[2] != resource_type or not tail:
        return None
    return tail


def reference_type(value: Any) -> str:
    """ "Patient" for {"reference": "Patient/1"}; "" when the reference has no type."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return ""
    ref: str = value["reference"]
    head = ref.split("/_history", 1)[0].rstrip("/").rpartition("/")[0]
    return head.rpartition("/")[2]


def codings(concept: Any) -> Iterator[tuple[str, str, str]]:
    """(system, code, display) of each coding of a CodeableConcept (or a list of them)."""
    concepts = concept if isinstance(concept, list) else [concept]
    for each in concepts:
        if not isinstance(each, dict):
            continue
        for coding in items(each, "coding"):
            code = coding.get("code")
            if isinstance(code, str) and code:
                yield text(coding.get("system")), code, text(coding.get("display"))


def concept_text(concept: Any) -> str:
    """What a person would read for a CodeableConcept: its text, else a coding's display."""
    concepts = concept if isinstance(concept, list) else [concept]
    for each in concepts:
        if isinstance(each, dict) and text(each.get("text")):
            return text(each.get("text"))
    for _, code, display in codings(concept):
        return display or code
    return ""


def code_in(concept: Any, system: str) -> str:
    """The first code of `system` in a CodeableConcept, or ""."""
    for found_system, code, _ in codings(concept):
        if found_system == system:
            return code
    return ""


def full_date(value: Any) -> datetime.date | None:
    """A FHIR date or dateTime with a full day ("1970-01-01", "1970-01-01T10:00:00Z"),
    as a calendar date; None for a partial ("1970", "1970-01") or malformed value."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.date.fromisoformat(value[:10])
    except ValueError:
        return None


def instant(value: Any) -> datetime.datetime | None:
    """An aware datetime for a FHIR dateTime/instant; a bare date is midnight in the
    practice's zone (FHIR leaves its zone unstated)."""
    if not isinstance(value, str):
        return None
    if len(value) == 10:
        day = full_date(value)
        if day is None:
            return None
        return datetime.datetime.combine(day, datetime.time(), tzinfo=practice_zone())
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        # FHIR requires a zone when a time is given; a value without one is not trusted.
        return None
    return moment


def period(resource: dict[str, Any], key: str = "period") -> tuple[Any, Any]:
    """The raw (start, end) of a Period element."""
    value = resource.get(key)
    if not isinstance(value, dict):
        return None, None
    return value.get("start"), value.get("end")


def human_name(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The name to use: official, else usual, else the first not marked old or maiden."""
    names = items(resource, "name")
    for use in ("official", "usual"):
        for name in names:
            if name.get("use") == use:
                return name
    for name in names:
        if name.get("use") not in ("old", "maiden", "anonymous"):
            return name
    return None


def given_and_family(name: dict[str, Any]) -> tuple[str, str]:
    given = name.get("given")
    given_text = " ".join(text(g) for g in given if text(g)) if isinstance(given, list) else ""
    return given_text, text(name.get("family"))


def in_force(element: dict[str, Any], today: datetime.date) -> bool:
    """False for an element whose period ended before today (an old phone, a past address)."""
    _, end = period(element)
    ended = full_date(end)
    return ended is None or ended >= today
