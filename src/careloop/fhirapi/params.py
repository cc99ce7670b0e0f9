"""Search parameters: each compiles a client's text into PHI-free values, then into a Q.

Compiling first has two uses. A bad value fails before any query (400, never a 500),
and the compiled criteria can be kept server-side for the paging links: a name or an
identifier becomes its blind-index digest (careloop.security.fields.blind_value), so a
search cursor row holds no class-I text. Several comma-separated values are OR-ed, a
repeated parameter AND-ed, as FHIR says.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from django.db.models import Q

from careloop.core.practice import practice_zone
from careloop.fhirapi.outcome import bad_request
from careloop.security.fields import blind_value

Compiled = Any  # JSON-able: str, int, dict, list, None

_DATE: Final = re.compile(
    r"^(?P<prefix>eq|ne|lt|le|gt|ge|sa|eb)?(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
NOTHING: Final = Q(pk__in=[])


@dataclass(frozen=True)
class SearchParam:
    """One search parameter of one resource type, as the CapabilityStatement lists it."""

    name: str
    type: str  # FHIR search parameter type: token, date, string, reference
    compile_one: Callable[[str, str], Compiled]  # (modifier, one value) -> compiled
    apply_one: Callable[[Compiled], Q]
    # Carries PHI (a name, an identifier, a birth date, a phone number): POST _search only.
    phi: bool = False
    modifiers: frozenset[str] = field(default_factory=frozenset)
    documentation: str = ""

    def compile(self, modifier: str, raw: str) -> list[Compiled]:
        if modifier and modifier not in self.modifiers:
            raise bad_request(f"parameter {self.name} does not support the :{modifier} modifier")
        values = [part for part in raw.split(",") if part.strip()]
        if not values:
            raise bad_request(f"parameter {self.name} has no value")
        return [self.compile_one(modifier, value.strip()) for value in values]

    def apply(self, compiled: list[Compiled]) -> Q:
        condition = NOTHING
        for value in compiled:
            condition |= self.apply_one(value)
        return condition


# --- tokens -------------------------------------------------------------------------------


def token_param(
    name: str,
    column: str,
    *,
    system_column: str | None = None,
    system: str = "",
    mapping: dict[str, list[str]] | None = None,
    documentation: str = "",
) -> SearchParam:
    """`code`, `system|code` or `|code`; `mapping` turns a FHIR code into careloop's codes.

    The system is compared with `system_column`, or else with the one fixed `system` of
    the column's codes (a code of another system matches nothing).
    """

    def compile_one(modifier: str, value: str) -> Compiled:
        named, bar, code = value.partition("|")
        if not bar:
            named, code = "", value
        codes = [code] if mapping is None else mapping.get(code, [])
        return {"system": named if bar else None, "codes": codes}

    def apply_one(value: Compiled) -> Q:
        condition = Q(**{f"{column}__in": value["codes"]})
        if value["system"] is not None and system_column is not None:
            condition &= Q(**{system_column: value["system"]})
        elif value["system"] and system_column is None and value["system"] != system:
            return NOTHING
        return condition

    return SearchParam(name, "token", compile_one, apply_one, documentation=documentation)


def id_param(to_pk: Callable[[str], Any]) -> SearchParam:
    """`_id`: a resource id; one that cannot be an id matches nothing."""

    def compile_one(modifier: str, value: str) -> Compiled:
        pk = to_pk(value)
        return None if pk is None else str(pk)

    def apply_one(value: Compiled) -> Q:
        return NOTHING if value is None else Q(pk=value)

    return SearchParam("_id", "token", compile_one, apply_one)


def reference_param(name: str, column: str, target: str = "Patient") -> SearchParam:
    """`Patient/<id>` or `<id>`; a reference to anything else matches nothing."""

    def compile_one(modifier: str, value: str) -> Compiled:
        kind, slash, ident = value.rpartition("/")
        if slash and kind.rsplit("/", 1)[-1] != target:
            return None
        try:
            return str(uuid.UUID(ident))
        except ValueError:
            return None

    def apply_one(value: Compiled) -> Q:
        return NOTHING if value is None else Q(**{column: value})

    return SearchParam(name, "reference", compile_one, apply_one, modifiers=frozenset({target}))


# --- blind-indexed strings ------------------------------------------------------------------


def blind_param(
    name: str, columns: list[str], kind: str, *, system_column: str | None = None, **extra: Any
) -> SearchParam:
    """Exact match (after normalisation) of an encrypted value through its blind index.

    FHIR string search matches prefixes; an HMAC cannot, so careloop matches the whole
    normalised value (`:exact` is accepted and means the same). With `system_column`,
    the value may be `system|value` (identifier).
    """

    def compile_one(modifier: str, value: str) -> Compiled:
        system = None
        if system_column is not None:
            system, bar, text = value.partition("|")
            if not bar:
                system, text = None, value
            value = text
        digest = blind_value(kind, value)
        return {"system": system or None, "digest": digest.hex() if digest else None}

    def apply_one(value: Compiled) -> Q:
        if value["digest"] is None:
            return NOTHING
        digest = bytes.fromhex(value["digest"])
        condition = NOTHING
        for column in columns:
            condition |= Q(**{column: digest})
        if value["system"] and system_column is not None:
            condition &= Q(**{system_column: value["system"]})
        return condition

    modifiers = frozenset({"exact"})
    return SearchParam(
        name,
        extra.pop("type", "string"),
        compile_one,
        apply_one,
        phi=True,
        modifiers=modifiers,
        **extra,
    )


# --- dates ------------------------------------------------------------------------------------


def _bounds(match: re.Match[str]) -> tuple[datetime.datetime, datetime.datetime]:
    """[start, end) of the moment or period a FHIR date value names, in UTC."""
    year = int(match["year"])
    month, day = int(match["month"] or 1), int(match["day"] or 1)
    if match["time"]:
        zone: datetime.tzinfo = datetime.UTC
        if match["zone"] and match["zone"] != "Z":
            sign = 1 if match["zone"][0] == "+" else -1
            hours, minutes = (int(x) for x in match["zone"][1:].split(":"))
            zone = datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
        start = datetime.datetime.fromisoformat(
            f"{match['year']}-{match['month']}-{match['day']}T{match['time']}"
        ).replace(tzinfo=zone)
        step = (
            datetime.timedelta(seconds=1)
            if match["time"].count(":") == 2
            else datetime.timedelta(minutes=1)
        )
        return start, start + step
    # A date without a time is a day (or month, year) in the practice's time zone.
    zone = practice_zone()
    first = datetime.datetime(year, month, day, tzinfo=zone)
    if match["day"]:
        last = first + datetime.timedelta(days=1)
    elif match["month"]:
        last = datetime.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    else:
        last = datetime.datetime(year + 1, 1, 1, tzinfo=zone)
    return first, last


def date_param(
    name: str, column: str, *, date_only: bool = False, phi: bool = False
) -> SearchParam:
    """A FHIR date search (`ge2024-01`, `2024-03-05`, `lt2024-03-05T10:00Z`) on one column."""

    def compile_one(modifier: str, value: str) -> Compiled:
        match = _DATE.match(value)
        if match is None:
            raise bad_request(f"parameter {name} takes a FHIR date, e.g. ge2024-01-31")
        try:
            start, end = _bounds(match)
        except ValueError:
            raise bad_request(f"parameter {name} names an impossible date") from None
        if date_only:
            return {
                "op": match["prefix"] or "eq",
                "lo": start.date().isoformat(),
                "hi": end.date().isoformat(),
            }
        return {"op": match["prefix"] or "eq", "lo": start.isoformat(), "hi": end.isoformat()}

    def apply_one(value: Compiled) -> Q:
        parse = datetime.date.fromisoformat if date_only else datetime.datetime.fromisoformat
        lo, hi = parse(value["lo"]), parse(value["hi"])
        conditions = {
            "eq": Q(**{f"{column}__gte": lo, f"{column}__lt": hi}),
            "ne": ~Q(**{f"{column}__gte": lo, f"{column}__lt": hi}),
            "gt": Q(**{f"{column}__gte": hi}),
            "sa": Q(**{f"{column}__gte": hi}),
            "ge": Q(**{f"{column}__gte": lo}),
            "lt": Q(**{f"{column}__lt": lo}),
            "eb": Q(**{f"{column}__lt": lo}),
            "le": Q(**{f"{column}__lt": hi}),
        }
        return conditions[value["op"]]

    return SearchParam(name, "date", compile_one, apply_one, phi=phi)
