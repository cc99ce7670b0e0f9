"""The one registry of FHIR resource types careloop serves: type -> `Provider`.

A provider says everything the API needs about one type: which class of data it is
in the permission table, the rows behind it, its search parameters, how a row becomes
a FHIR resource, and where its patient and last-updated time are. URLs, the
CapabilityStatement, search, read and `$export` are all built from this registry, so
serving a new type (Communication, Task, MeasureReport...) is one new module calling
`register` and one import in `careloop.fhirapi.resources`.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model, QuerySet

from careloop.fhirapi.params import SearchParam, date_param, id_param, reference_param
from careloop.security.permissions import Resource

# The classes of data the caller may read: a serializer leaves out the parts of a
# resource whose class is not in it (minimum necessary, as the patient page does).
Readable = frozenset[Resource]
Serializer = Callable[[Any, Readable], dict[str, Any]]


@dataclass(frozen=True)
class Include:
    """`_include=<Type>:<param>`: the referenced resources of another type."""

    target: str
    column: str  # the attribute on a row holding the target's primary key


@dataclass(frozen=True)
class Provider:
    type: str
    resource: Resource
    rows: Callable[[], QuerySet[Any]]
    serialize: Serializer
    params: dict[str, SearchParam]
    # The column holding the patient's id ("id" for Patient itself); None: no patient.
    patient_column: str | None
    # The column `_lastUpdated` and `$export?_since` compare with; None: not kept.
    updated_column: str | None = None
    includes: dict[str, Include] = field(default_factory=dict)
    profile: str | None = None
    # Row primary key from a FHIR id; None when the text cannot be one.
    to_pk: Callable[[str], Any] = lambda text: _uuid_or_none(text)
    exportable: bool = True


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


REGISTRY: dict[str, Provider] = {}


def register(
    *,
    type: str,
    resource: Resource,
    rows: Callable[[], QuerySet[Any]],
    serialize: Serializer,
    params: list[SearchParam],
    patient_column: str | None,
    updated_column: str | None = None,
    includes: dict[str, Include] | None = None,
    profile: str | None = None,
    to_pk: Callable[[str], Any] | None = None,
    exportable: bool = True,
) -> Provider:
    """Add a type; `_id`, `_lastUpdated` and `patient` are added from the columns."""
    pk = to_pk or _uuid_or_none
    common = [id_param(pk)]
    if updated_column is not None:
        common.append(date_param("_lastUpdated", updated_column))
    if patient_column is not None and type != "Patient":
        common.append(reference_param("patient", patient_column))
    provider = Provider(
        type=type,
        resource=resource,
        rows=rows,
        serialize=serialize,
        params={param.name: param for param in [*common, *params]},
        patient_column=patient_column,
        updated_column=updated_column,
        includes=includes or {},
        profile=profile,
        to_pk=pk,
        exportable=exportable,
    )
    REGISTRY[type] = provider
    return provider


def provider_of(resource_type: str) -> Provider | None:
    return REGISTRY.get(resource_type)


def instant(value: datetime.datetime) -> str:
    """A FHIR instant (UTC, `Z`) from an aware datetime."""
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def model_id(row: Model) -> str:
    return str(row.pk)
