"""Reading FHIR resources out of files, one at a time, whatever the packaging.

`careloop import fhir` takes NDJSON (`.ndjson`, `.ndjson.gz`), a Bulk Data export
folder with its `manifest.json`, JSON files holding one resource or a Bundle (of any
type, nested Bundles included), or a directory of any of these. Each resource comes
out as an `Item` that knows where it came from (file and line, or entry), so that a
bad one can be quarantined with its place and the rest of the file carries on.

Lines are read as bytes and parsed later, by the pipeline, so a line that is not JSON
is an item too (with `resource` None) rather than an exception that stops the file.
Memory stays bounded for NDJSON whatever the file size; a Bundle file is parsed whole.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

# Resources that others refer to come first, so that references mostly resolve on the
# way in; anything that still arrives before its patient is resolved at the end.
TYPE_ORDER = (
    "Patient",
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "Medication",
)
LATE_TYPES = ("Coverage", "Appointment", "CareTeam", "Consent")
_TYPE_IN_NAME = re.compile(r"(?:^|[.\-_])([A-Z][A-Za-z]+)(?:[.\-_]|$)")
READ_CHUNK = 1 << 20


class InputError(Exception):
    """A path that cannot be read as FHIR input; the message is safe to show."""


@dataclass(slots=True)
class Item:
    """One resource to import: raw NDJSON bytes, or an already parsed JSON object."""

    origin: str  # the file's name relative to what the user gave
    line: int | None  # NDJSON line (1-based) or Bundle entry (1-based)
    raw: bytes | None = None
    resource: dict[str, Any] | None = None
    # Why the item is unusable before parsing (a Bundle entry without a resource...).
    problem: str = ""


@dataclass(frozen=True, slots=True)
class InputFile:
    path: Path
    origin: str
    resource_type: str  # "" when the name does not say
    ndjson: bool
    expected: int | None = None  # count from the manifest


def type_rank(resource_type: str) -> int:
    if resource_type in TYPE_ORDER:
        return TYPE_ORDER.index(resource_type)
    if resource_type in LATE_TYPES:
        return len(TYPE_ORDER) + 2 + LATE_TYPES.index(resource_type)
    return len(TYPE_ORDER) + 1


def _type_from_name(name: str) -> str:
    for match in _TYPE_IN_NAME.finditer(name):
        word = match.group(1)
        if word not in {"Bundle", "NDJSON", "JSON"}:
            return word
    return ""


def _is_ndjson(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz"))


def _is_json(path: Path) -> bool:
    return path.name.lower().endswith((".json", ".json.gz"))


def _manifest_files(folder: Path, manifest: Path) -> list[InputFile]:
    try:
        data = orjson.loads(manifest.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise InputError(f"{manifest.name} in {folder.name} is not readable JSON") from error
    outputs = data.get("output") if isinstance(data, dict) else None
    if not isinstance(outputs, list):
        raise InputError(f"{manifest.name} in {folder.name} has no output list")
    files = []
    for entry in outputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise InputError(f"{manifest.name} in {folder.name} has an output without a url")
        name = entry["url"].rstrip("/").rpartition("/")[2]
        path = folder / name
        if not path.is_file():
            raise InputError(
                f"{manifest.name} in {folder.name} lists {name}, which is not in the folder"
            )
        count = entry.get("count")
        files.append(
            InputFile(
                path=path,
                origin=f"{folder.name}/{name}",
                resource_type=str(entry.get("type") or _type_from_name(name)),
                ndjson=_is_ndjson(path) or not _is_json(path),
                expected=count if isinstance(count, int) else None,
            )
        )
    return files


def _folder_files(folder: Path) -> list[InputFile]:
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return _manifest_files(folder, manifest)
    files = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if not (_is_ndjson(path) or _is_json(path)):
            continue
        files.append(
            InputFile(
                path=path,
                origin=str(path.relative_to(folder.parent)),
                resource_type=_type_from_name(path.name),
                ndjson=_is_ndjson(path),
            )
        )
    return files


def input_files(paths: Sequence[Path]) -> list[InputFile]:
    """Every file to read, referenced types first; raise InputError for a bad path."""
    files: list[InputFile] = []
    for path in paths:
        if path.is_dir():
            files.extend(_folder_files(path))
        elif path.is_file():
            if not (_is_ndjson(path) or _is_json(path)):
                raise InputError(
                    f"{path.name} is neither NDJSON (.ndjson, .ndjson.gz) nor JSON (.json)"
                )
            files.append(
                InputFile(
                    path=path,
                    origin=path.name,
                    resource_type=_type_from_name(path.name),
                    ndjson=_is_ndjson(path),
                )
            )
        else:
            raise InputError(f"{path} does not exist")
    # A stable sort: the user's order within one rank.
    files.sort(key=lambda f: type_rank(f.resource_type))
    return files


def _open(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    return path.open("rb", buffering=READ_CHUNK)


def read_ndjson(file: InputFile) -> Iterator[Item]:
    try:
        with _open(file.path) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield Item(origin=file.origin, line=number, raw=line)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        # A truncated or corrupt file: what was read stands; the rest is one item.
        yield Item(
            origin=file.origin, line=None, problem=f"file unreadable ({type(error).__name__})"
        )


def _bundle_items(origin: str, bundle: dict[str, Any], prefix: str = "") -> Iterator[Item]:
    entries = bundle.get("entry")
    if entries is None:
        return
    if not isinstance(entries, list):
        yield Item(origin=origin, line=None, problem="Bundle.entry is not a list")
        return
    for index, entry in enumerate(entries, start=1):
        place = f"{prefix}entry {index}"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            request = entry.get("request") if isinstance(entry, dict) else None
            if isinstance(request, dict) and request.get("method") == "DELETE":
                continue  # a delete in a transaction: careloop keeps its history
            yield Item(origin=f"{origin} {place}", line=index, problem="entry without a resource")
            continue
        if resource.get("resourceType") == "Bundle":
            yield from _bundle_items(origin, resource, prefix=f"{place} > ")
            continue
        yield Item(origin=f"{origin} {place}" if prefix else origin, line=index, resource=resource)


def read_json(file: InputFile) -> Iterator[Item]:
    try:
        with _open(file.path) as handle:
            data = orjson.loads(handle.read())
    except orjson.JSONDecodeError:
        yield Item(origin=file.origin, line=None, problem="not JSON")
        return
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        yield Item(
            origin=file.origin, line=None, problem=f"file unreadable ({type(error).__name__})"
        )
        return
    if not isinstance(data, dict):
        yield Item(origin=file.origin, line=None, problem="not a FHIR resource (no JSON object)")
    elif data.get("resourceType") == "Bundle":
        yield from _bundle_items(file.origin, data)
    else:
        yield Item(origin=file.origin, line=None, resource=data)


def read_file(file: InputFile) -> Iterator[Item]:
    return read_ndjson(file) if file.ndjson else read_json(file)
