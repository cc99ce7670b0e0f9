"""The official value-set expansions, shipped with careloop and loaded into tables.

careloop ships the expansions the measures use as one gzipped JSON file
(`data/valuesets.json.gz`, made from the published ValueSet resources with
`careloop caregaps load-valuesets PATH --save-bundle FILE`). They are loaded on first
use: evaluating a
measure checks that every value set it names is in the tables and loads the shipped
file when one is missing, so a fresh database needs no extra step and a test database
pays only when a measure runs. `careloop caregaps load-valuesets [PATH]` loads (or
reloads) explicitly, from the shipped file or from ValueSet JSON files.

Value sets are matched by OID, never by URL: the same set is published under both
`http://` and `https://cts.nlm.nih.gov/fhir/ValueSet/<oid>`.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from django.db import transaction

from careloop.caregaps.models import ValueSet, ValueSetCode

SHIPPED = Path(__file__).resolve().parent / "data" / "valuesets.json.gz"
BATCH = 2000


class TerminologyError(Exception):
    """A value set file cannot be read, or a measure names a value set nobody loaded."""


@dataclass(slots=True)
class Expansion:
    oid: str
    url: str
    version: str
    name: str
    codes: list[tuple[str, str, str]] = field(default_factory=list)


def oid_of(url: str) -> str:
    """The OID at the end of a value set's canonical URL (or the OID itself)."""
    return url.rstrip("/").rsplit("/", 1)[-1].removeprefix("urn:oid:")


def _contains(entries: Any) -> Iterator[tuple[str, str, str]]:
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        code, system = entry.get("code"), entry.get("system")
        if isinstance(code, str) and isinstance(system, str) and not entry.get("abstract"):
            display = entry.get("display")
            yield system, code, display[:300] if isinstance(display, str) else ""
        yield from _contains(entry.get("contains"))


def _enumerated(compose: Any, origin: str) -> Iterator[tuple[str, str, str]]:
    """The codes of a compose that only enumerates concepts (a few small sets ship
    without an expansion); anything that needs a terminology server is refused."""
    includes = compose.get("include") if isinstance(compose, dict) else None
    if not isinstance(includes, list) or not includes:
        raise TerminologyError(f"{origin}: the ValueSet has neither expansion nor concepts")
    for include in includes:
        if not isinstance(include, dict) or "filter" in include or "valueSet" in include:
            raise TerminologyError(f"{origin}: the compose needs a terminology server")
        for concept in include.get("concept") or []:
            display = concept.get("display")
            yield include["system"], concept["code"], display if isinstance(display, str) else ""


def expansion_from_resource(resource: dict[str, Any], origin: str) -> Expansion:
    if resource.get("resourceType") != "ValueSet" or not isinstance(resource.get("url"), str):
        raise TerminologyError(f"{origin}: not a ValueSet with a url")
    expansion = resource.get("expansion")
    if isinstance(expansion, dict):
        codes = sorted(set(_contains(expansion.get("contains"))))
    else:
        codes = sorted(set(_enumerated(resource.get("compose"), origin)))
    return Expansion(
        oid=oid_of(resource["url"]),
        url=resource["url"],
        version=str(resource.get("version") or ""),
        name=str(resource.get("title") or resource.get("name") or ""),
        codes=codes,
    )


def read_path(path: Path) -> list[Expansion]:
    """Expansions from a shipped bundle (.json.gz), a ValueSet JSON file, or a folder
    searched for `*/valuesets/*.json` and `*.json` (the published measure layout)."""
    if path.is_dir():
        files = sorted(set(path.glob("*/valuesets/*.json")) | set(path.glob("*.json")))
        if not files:
            raise TerminologyError(f"{path}: no ValueSet JSON files found")
        return _deduplicated(expansion_from_resource(_load(f), f.name) for f in files)
    if path.name.endswith(".gz"):
        return read_bundle(path)
    return [expansion_from_resource(_load(path), path.name)]


def _load(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise TerminologyError(f"{path.name}: cannot read ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise TerminologyError(f"{path.name}: not a JSON object")
    return data


def _deduplicated(expansions: Iterable[Expansion]) -> list[Expansion]:
    by_oid: dict[str, Expansion] = {}
    for expansion in expansions:
        by_oid[expansion.oid] = expansion
    return [by_oid[oid] for oid in sorted(by_oid)]


def read_bundle(path: Path = SHIPPED) -> list[Expansion]:
    try:
        data = orjson.loads(gzip.decompress(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError) as error:
        raise TerminologyError(f"{path.name}: cannot read ({type(error).__name__})") from None
    return [
        Expansion(v["oid"], v["url"], v["version"], v["name"], [(*c,) for c in v["codes"]])
        for v in data["valuesets"]
    ]


def write_bundle(expansions: list[Expansion], path: Path) -> None:
    """The compact shipped form: one gzipped JSON document, value sets sorted by OID."""
    document = {
        "valuesets": [
            {
                "oid": e.oid,
                "url": e.url,
                "version": e.version,
                "name": e.name,
                "codes": [list(c) for c in e.codes],
            }
            for e in sorted(expansions, key=lambda e: e.oid)
        ]
    }
    path.write_bytes(gzip.compress(orjson.dumps(document), mtime=0))


@transaction.atomic
def valuesets_load(*, expansions: list[Expansion]) -> int:
    """Replace each given value set's expansion; returns how many codes were written."""
    written = 0
    for expansion in expansions:
        ValueSet.objects.update_or_create(
            oid=expansion.oid,
            defaults={"url": expansion.url, "version": expansion.version, "name": expansion.name},
        )
        ValueSetCode.objects.filter(value_set_id=expansion.oid).delete()
        rows = [
            ValueSetCode(value_set_id=expansion.oid, system=s, code=c, display=d)
            for s, c, d in expansion.codes
        ]
        ValueSetCode.objects.bulk_create(rows, batch_size=BATCH)
        written += len(rows)
    _members.clear()
    return written


def valuesets_ensure(*, oids: Iterable[str]) -> None:
    """Load the shipped expansions when any of `oids` is not in the tables yet (and
    the practice value sets among them: careloop.caregaps.valuesets_local)."""
    wanted = set(oids)
    if not wanted:
        return
    from careloop.caregaps.valuesets_local import local_valuesets_ensure

    # One query when all are there and current (a refresh for one patient asks).
    stored = dict(ValueSet.objects.filter(oid__in=wanted).values_list("oid", "version"))
    if local_valuesets_ensure(oids=wanted, stored=stored) == 0 and set(stored) == wanted:
        return
    present = set(ValueSet.objects.filter(oid__in=wanted).values_list("oid", flat=True))
    if present == wanted:
        return
    valuesets_load(expansions=read_bundle())
    present = set(ValueSet.objects.filter(oid__in=wanted).values_list("oid", flat=True))
    missing = sorted(wanted - present)
    if missing:
        raise TerminologyError(f"value sets not available: {', '.join(missing)}")


# The codes of value sets, per process: measures compile them into their SQL as
# parameters (careloop.caregaps.dsl). Expansions change only through `valuesets_load`,
# which clears this; another process sees a reload after its restart.
_members: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}


def valueset_members(*, oids: Iterable[str], using: str = "default") -> dict[str, tuple[str, ...]]:
    """The codes of the value sets `oids` together, by code system (loading the
    shipped expansions first when one is missing)."""
    wanted = sorted(set(oids))
    members: dict[str, set[str]] = {}
    if any((using, oid) not in _members for oid in wanted):
        valuesets_ensure(oids=wanted)  # may reload, which empties the cache
    missing = [oid for oid in wanted if (using, oid) not in _members]
    if missing:
        found: dict[str, dict[str, list[str]]] = {oid: {} for oid in missing}
        rows = ValueSetCode.objects.using(using).filter(value_set_id__in=missing)
        for oid, system, code in rows.values_list("value_set_id", "system", "code"):
            found[oid].setdefault(system, []).append(code)
        for oid, systems in found.items():
            _members[(using, oid)] = {s: tuple(sorted(c)) for s, c in systems.items()}
    for oid in wanted:
        for system, codes in _members[(using, oid)].items():
            members.setdefault(system, set()).update(codes)
    return {system: tuple(sorted(codes)) for system, codes in sorted(members.items())}
