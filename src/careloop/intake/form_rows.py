"""The rows a form page renders: each item with its current values, its error, and its
enableWhen conditions as data for the browser script (static intake/enable_when.js)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from careloop.intake.answers import Answers, field_name, form_text, other_name
from careloop.intake.definition import Condition, Item, Option


@dataclass
class Row:
    item: Item
    name: str
    other_name: str
    values: list[str]
    other: str
    error: str
    conditions: str
    children: list[Row] = field(default_factory=list)

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def choices(self) -> list[tuple[Option, bool]]:
        return [(option, option.key in self.values) for option in self.item.options]

    @property
    def widget(self) -> str:
        kind = self.item.type
        if kind in ("choice", "open-choice"):
            return "checkboxes" if self.item.repeats else "radios"
        return kind


def _js(condition: Condition) -> dict[str, Any]:
    answer = condition.answer
    if isinstance(answer, tuple):
        kind, value = "coding", answer[1]
    elif isinstance(answer, bool):
        kind, value = "boolean", "true" if answer else "false"
    elif isinstance(answer, int | Decimal):
        kind, value = "number", str(answer)
    elif isinstance(answer, datetime.date):
        kind, value = "date", answer.isoformat()
    else:
        kind, value = "string", str(answer)
    return {"q": condition.question, "op": condition.operator, "t": kind, "a": value}


def form_rows(
    items: tuple[Item, ...],
    values: Mapping[str, list[str]],
    errors: Mapping[str, str],
    others: Mapping[str, str],
) -> list[Row]:
    return [
        Row(
            item=item,
            name=field_name(item.link_id),
            other_name=other_name(item.link_id),
            values=list(values.get(item.link_id, [])),
            other=others.get(item.link_id, ""),
            error=errors.get(item.link_id, ""),
            conditions=json.dumps([_js(c) for c in item.enable_when]) if item.enable_when else "",
            children=form_rows(item.items, values, errors, others),
        )
        for item in items
    ]


def values_from_answers(
    items_by_id: Mapping[str, Item], answers: Answers
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Saved answers as the form shows them; an open-choice's own text goes to "other"."""
    values: dict[str, list[str]] = {}
    others: dict[str, str] = {}
    for link_id, found in answers.items():
        item = items_by_id.get(link_id)
        for value in found:
            text = form_text(value)
            if item is not None and item.type == "open-choice" and item.option(text) is None:
                others[link_id] = text
            else:
                values.setdefault(link_id, []).append(text)
    return values, others


def values_from_post(
    items_by_id: Mapping[str, Item], data: Any
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """What was typed, as it was typed, for showing the form again with its errors."""
    values = {
        link: [v for v in data.getlist(field_name(link)) if v.strip()] for link in items_by_id
    }
    others = {link: data.get(other_name(link), "") for link in items_by_id}
    return values, others
