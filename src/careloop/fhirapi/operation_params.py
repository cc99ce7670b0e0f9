"""The input of a FHIR operation: from the query string (GET), or from a POST body that
is a `Parameters` resource (`application/fhir+json`) or a form.

Values come out as text by name (`Inputs`); each operation says which names it takes,
and a name it does not know is a 400, since ignoring `practitioner=` or `topic=` would
answer a wider question than the one asked. Diagnostics never echo a value.
"""

from __future__ import annotations

import calendar
import datetime
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from django.http import HttpRequest

from careloop.fhirapi.outcome import FhirError, bad_request

_FHIR_DATE: Final = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T[0-9:.+\-Z]*)?$")
# Parameters every FHIR interaction may carry (careloop.fhirapi.auth checks `_format`).
_GENERAL: Final = frozenset({"_format", "_pretty"})


@dataclass(frozen=True)
class Inputs:
    values: dict[str, list[str]]

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def one(self, name: str, *, required: bool = False) -> str | None:
        found = self.all(name)
        if len(found) > 1:
            raise bad_request(f"parameter {name} may be given once")
        if not found:
            if required:
                raise bad_request(f"parameter {name} is required")
            return None
        return found[0]


def operation_inputs(request: HttpRequest, *, accepted: Collection[str]) -> Inputs:
    """The operation's parameters; 400 for a name outside `accepted`, 415 for a body
    that is neither a Parameters resource nor a form."""
    pairs = list(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True))
    if request.method == "POST" and request.body:
        content_type = (request.content_type or "").lower()
        if content_type in ("application/fhir+json", "application/json"):
            pairs += _parameters(request.body)
        elif content_type == "application/x-www-form-urlencoded":
            pairs += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        else:
            raise FhirError(
                415, "not-supported", "send a Parameters resource as application/fhir+json"
            )
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if name in _GENERAL:
            continue
        if name not in accepted:
            raise bad_request(f"this operation does not take the parameter {name[:40]!r}")
        values.setdefault(name, []).append(value.strip())
    return Inputs(values)


def _parameters(body: bytes) -> list[tuple[str, str]]:
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("the body is not JSON") from None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        raise bad_request("the body must be a Parameters resource")
    pairs: list[tuple[str, str]] = []
    for parameter in resource.get("parameter") or []:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise bad_request("each Parameters.parameter needs a name")
        value = _value(parameter)
        if value is None:
            raise bad_request(f"parameter {parameter['name'][:40]!r} needs a simple value[x]")
        pairs.append((parameter["name"], value))
    return pairs


def _value(parameter: dict[str, Any]) -> str | None:
    for key, value in parameter.items():
        if key.startswith("value") and isinstance(value, str | int | bool):
            return str(value).lower() if isinstance(value, bool) else str(value)
        if key == "valueReference" and isinstance(value, dict):
            reference = value.get("reference")
            return reference if isinstance(reference, str) else None
    return None


def period_bound(text: str, name: str, *, end: bool) -> datetime.date:
    """A FHIR date (YYYY, YYYY-MM or YYYY-MM-DD; a time is ignored): the first day it
    names for a start, the last for an end ("2026" ends 2026-12-31)."""
    match = _FHIR_DATE.match(text)
    if match is None:
        raise bad_request(f"parameter {name} must be a date (YYYY-MM-DD)")
    year, month, day = match.groups()
    try:
        if day is not None:
            return datetime.date(int(year), int(month), int(day))
        first_month, last_month = (int(month), int(month)) if month else (1, 12)
        if not end:
            return datetime.date(int(year), first_month, 1)
        last_day = calendar.monthrange(int(year), last_month)[1]
        return datetime.date(int(year), last_month, last_day)
    except ValueError:
        raise bad_request(f"parameter {name} must be a date (YYYY-MM-DD)") from None


def period_dates(inputs: Inputs) -> tuple[datetime.date, datetime.date]:
    """`periodStart` and `periodEnd`, both required, the end not before the start."""
    start = period_bound(inputs.one("periodStart", required=True) or "", "periodStart", end=False)
    end = period_bound(inputs.one("periodEnd", required=True) or "", "periodEnd", end=True)
    if end < start:
        raise bad_request("periodEnd is before periodStart")
    return start, end


def patient_reference(text: str, name: str) -> uuid.UUID:
    """careloop's Patient id from `Patient/<id>`; 400 for any other shape."""
    kind, _, raw = text.partition("/")
    try:
        if kind != "Patient":
            raise ValueError
        return uuid.UUID(raw)
    except ValueError:
        raise bad_request(f"parameter {name} must be Patient/<id>") from None
