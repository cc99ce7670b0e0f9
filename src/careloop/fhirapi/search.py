"""Search: criteria in, one page of a searchset Bundle out, paging by server-side cursor.

A search's criteria are compiled (careloop.fhirapi.params) into PHI-free values and
its pages are keyed by primary key (`pk > last`), so a page never repeats or skips a
row that others insert meanwhile. The `next` link is a bare cursor id: the compiled
criteria wait in a `SearchCursor` row owned by the client for `CURSOR_LIFETIME`, and no
name, identifier or birth date ever appears in a URL.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from django.db.models import Q

from careloop.core import clock
from careloop.fhirapi.auth import Caller
from careloop.fhirapi.models import SearchCursor
from careloop.fhirapi.outcome import FhirError, bad_request
from careloop.fhirapi.registry import REGISTRY, Provider
from careloop.fhirapi.scopes import READ, SEARCH

DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 200
CURSOR_LIFETIME: Final = datetime.timedelta(hours=1)
# Parameters about the search itself rather than the resources.
_CONTROL: Final = frozenset({"_count", "_include", "_format", "_cursor"})


@dataclass
class Criteria:
    filters: list[list[Any]] = field(default_factory=list)  # [name, modifier, compiled]
    includes: list[str] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    ignored: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.filters]


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise bad_request("_count takes a whole number") from None
    if value < 1:
        raise bad_request("_count must be at least 1")
    return min(value, MAX_COUNT)


def compile_criteria(
    provider: Provider, pairs: list[tuple[str, str]], *, strict: bool, posted: bool
) -> Criteria:
    """The compiled criteria of a search; 400 for a bad value, or (strict) an unknown name.

    `posted` says the criteria came in a POST body: parameters that carry PHI are
    refused in a query string, where proxies and server logs would keep them.
    """
    criteria = Criteria()
    for key, value in pairs:
        name, _, modifier = key.partition(":")
        if name == "_count":
            criteria.count = _count(value)
        elif name == "_include":
            if value not in provider.includes:
                raise bad_request(
                    f"_include supports {sorted(provider.includes) or 'nothing'} here"
                )
            criteria.includes.append(value)
        elif name in _CONTROL:
            continue
        elif (param := provider.params.get(name)) is not None:
            if param.phi and not posted:
                raise bad_request(
                    f"parameter {name} identifies a person: send it in the body of "
                    f"POST {provider.type}/_search (application/x-www-form-urlencoded), "
                    "not in the URL"
                )
            criteria.filters.append([name, modifier, param.compile(modifier, value)])
        elif strict:
            raise bad_request(f"unknown search parameter {name} for {provider.type}")
        else:
            criteria.ignored.append(name)
    return criteria


def _condition(provider: Provider, criteria: Criteria) -> Q:
    condition = Q()
    for name, _, compiled in criteria.filters:
        condition &= provider.params[name].apply(compiled)
    return condition


def _patient_of(criteria: Criteria) -> uuid.UUID | None:
    """The one patient a search is about (for the audit event), if it names one."""
    for name, _, compiled in criteria.filters:
        if name == "patient" and len(compiled) == 1 and compiled[0]:
            return uuid.UUID(compiled[0])
    return None


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    included: list[dict[str, Any]]
    last_pk: str | None  # set when there is a next page


def _included(
    caller: Caller, provider: Provider, criteria: Criteria, rows: list[Any]
) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for name in criteria.includes:
        include = provider.includes[name]
        target = REGISTRY[include.target]
        caller.require(target, READ)
        ids = {getattr(row, include.column) for row in rows}
        readable = caller.readable
        resources += [target.serialize(row, readable) for row in target.rows().filter(pk__in=ids)]
    return resources


def search_page(caller: Caller, provider: Provider, criteria: Criteria, after: str | None) -> Page:
    """One page of matches after primary key `after`; audited as one `fhir.search`."""
    caller.require(provider, SEARCH, patient_id=_patient_of(criteria))
    rows_query = provider.rows().filter(_condition(provider, criteria)).order_by("pk")
    if after:
        rows_query = rows_query.filter(pk__gt=after)
    rows = list(rows_query[: criteria.count + 1])
    more = len(rows) > criteria.count
    rows = rows[: criteria.count]
    included = _included(caller, provider, criteria, rows)
    caller.audit(
        "fhir.search",
        resource_type=provider.type,
        resource_id=f"count={len(rows)};included={len(included)}",
        patient_id=_patient_of(criteria),
        fields=[*criteria.names, *(f"_include={name}" for name in criteria.includes)],
    )
    return Page(rows=rows, included=included, last_pk=str(rows[-1].pk) if more and rows else None)


def cursor_save(caller: Caller, provider: Provider, criteria: Criteria, after: str) -> SearchCursor:
    return SearchCursor.objects.create(
        client=caller.client,
        resource_type=provider.type,
        criteria=criteria.filters,
        includes=criteria.includes,
        count=criteria.count,
        after=after,
        expires_at=clock.now() + CURSOR_LIFETIME,
    )


def cursor_load(caller: Caller, provider: Provider, cursor_id: str) -> tuple[Criteria, str]:
    """The criteria and position a paging link stands for; 404 once it expired."""
    try:
        key = uuid.UUID(cursor_id)
    except ValueError:
        key = None
    cursor = (
        SearchCursor.objects.filter(
            pk=key, client=caller.client, resource_type=provider.type, expires_at__gt=clock.now()
        ).first()
        if key
        else None
    )
    if cursor is None:
        raise FhirError(404, "not-found", "this paging link expired or is unknown; search again")
    criteria = Criteria(filters=cursor.criteria, includes=cursor.includes, count=cursor.count)
    return criteria, cursor.after


def bundle(
    caller: Caller,
    provider: Provider,
    criteria: Criteria,
    page: Page,
    *,
    base: str,
    self_link: str,
) -> dict[str, Any]:
    readable = caller.readable
    links = [{"relation": "self", "url": self_link}]
    if page.last_pk is not None:
        cursor = cursor_save(caller, provider, criteria, page.last_pk)
        links.append(
            {
                "relation": "next",
                "url": f"{base}/{provider.type}?{urlencode({'_cursor': str(cursor.pk)})}",
            }
        )
    entries = [
        {
            "fullUrl": f"{base}/{provider.type}/{row.pk}",
            "resource": provider.serialize(row, readable),
            "search": {"mode": "match"},
        }
        for row in page.rows
    ]
    entries += [
        {
            "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
            "resource": resource,
            "search": {"mode": "include"},
        }
        for resource in page.included
    ]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}
