"""The simple questionnaire editor: a title and a flat list of questions, written as
the same FHIR Questionnaire JSON an import stores.

It edits only what it can show: a questionnaire with groups, enableWhen or texts in
other languages (imported) is not simple, and is changed by importing a new version of
its JSON instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils.text import slugify

from careloop.intake.definition import Item

# (editor type, label): "checkboxes" is a choice item that repeats.
EDITOR_TYPES = (
    ("string", "Short text"),
    ("text", "Long text"),
    ("boolean", "Yes / no"),
    ("integer", "Whole number"),
    ("decimal", "Number"),
    ("date", "Date"),
    ("choice", "One choice"),
    ("checkboxes", "Several choices"),
    ("display", "Text only (no answer)"),
)
BLANK_ROWS = 3
EDITOR_URL = "https://careloop.example/fhir/Questionnaire/"


@dataclass
class EditorRow:
    link_id: str
    text: str
    type: str
    required: bool
    options: str


def is_simple(items: tuple[Item, ...]) -> bool:
    return all(
        not item.items
        and not item.enable_when
        and item.type != "open-choice"
        and (item.type != "group")
        and not item.text_translations
        and all(
            option.coding is None and not option.display_translations for option in item.options
        )
        for item in items
    )


def rows_from_items(items: tuple[Item, ...]) -> list[EditorRow]:
    rows = [
        EditorRow(
            link_id=item.link_id,
            text=item.text,
            type="checkboxes" if item.type == "choice" and item.repeats else item.type,
            required=item.required,
            options="\n".join(option.key for option in item.options),
        )
        for item in items
    ]
    return rows + [EditorRow("", "", "string", False, "") for _ in range(BLANK_ROWS)]


def rows_from_post(data: Any) -> list[EditorRow]:
    try:
        count = min(int(data.get("rows", "0")), 200)
    except ValueError:
        count = 0
    rows = []
    for n in range(count):
        text = data.get(f"item-{n}-text", "").strip()
        if not text:
            continue
        rows.append(
            EditorRow(
                link_id=data.get(f"item-{n}-link", "").strip()[:64],
                text=text[:500],
                type=data.get(f"item-{n}-type", "string"),
                required=data.get(f"item-{n}-required") == "on",
                options=data.get(f"item-{n}-options", ""),
            )
        )
    return rows


def _next_link_id(used: set[str]) -> str:
    n = 1
    while f"q{n}" in used:
        n += 1
    used.add(f"q{n}")
    return f"q{n}"


def definition_from_rows(
    *,
    title: str,
    url: str,
    version: str,
    status: str,
    rows: list[EditorRow],
    earlier: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The Questionnaire JSON for the editor's rows; linkIds kept, new ones `qN`.

    A new question never takes a linkId the form had before (`earlier`): answers
    already given to a removed question must not read as answers to the new one.
    """
    kept = {row.link_id for row in rows if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", row.link_id)}
    used = kept | set(earlier)
    items = []
    for row in rows:
        link_id = row.link_id if row.link_id in kept else _next_link_id(used)
        kind = "choice" if row.type == "checkboxes" else row.type
        item: dict[str, Any] = {"linkId": link_id, "text": row.text, "type": kind}
        if row.required and kind != "display":
            item["required"] = True
        if row.type == "checkboxes":
            item["repeats"] = True
        if kind == "choice":
            choices = [line.strip() for line in row.options.splitlines() if line.strip()]
            item["answerOption"] = [
                {"valueString": choice[:200]} for choice in dict.fromkeys(choices)
            ]
        items.append(item)
    return {
        "resourceType": "Questionnaire",
        "url": url or EDITOR_URL + (slugify(title)[:60] or "form"),
        "version": version or "1",
        "title": title,
        "status": status,
        "item": items,
    }
