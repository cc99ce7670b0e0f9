"""Answers to a questionnaire: read from the form, checked, and written as FHIR.

Answers are held as `{linkId: [value, ...]}` with typed values (bool, int, Decimal,
date, str, or a coding as `(system, code)`). `enabled_ids` evaluates enableWhen the
way the R4 specification describes it: a question that is not enabled counts as not
answered, so conditions chain; a hidden item is never required and its answers are
dropped (`answers_kept`). The browser runs the same rules live (static
intake/enable_when.js); the server's evaluation on submit is the one that counts.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext as _

from careloop.intake.definition import Condition, Item, Value, walk

Answers = dict[str, list[Value]]
TEXT_LIMIT = {"string": 500, "text": 5000}


def field_name(link_id: str) -> str:
    return f"q-{link_id}"


def other_name(link_id: str) -> str:
    return f"q-{link_id}-other"


def _parse_one(item: Item, raw: str) -> Value:
    """One typed value from the form's text; ValueError with the message to show."""
    if item.type == "boolean":
        if raw not in ("true", "false"):
            raise ValueError(_("Choose yes or no."))
        return raw == "true"
    if item.type == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(_("Enter a whole number, like 3.")) from None
    if item.type == "decimal":
        try:
            number = Decimal(raw)
        except InvalidOperation:
            raise ValueError(_("Enter a number, like 2.5.")) from None
        if not number.is_finite():
            raise ValueError(_("Enter a number, like 2.5."))
        return number
    if item.type == "date":
        try:
            return datetime.date.fromisoformat(raw)
        except ValueError:
            raise ValueError(_("Enter a date as year-month-day, like 2026-03-31.")) from None
    if item.type in ("choice", "open-choice"):
        option = item.option(raw)
        if option is None:
            raise ValueError(_("Choose one of the options."))
        if option.coding is not None:
            return (option.coding.get("system", ""), option.key)
        return option.key
    if len(raw) > TEXT_LIMIT.get(item.type, 500):
        raise ValueError(_("This answer is too long."))
    return raw


def answers_from_form(
    items: tuple[Item, ...], data: Mapping[str, Any]
) -> tuple[Answers, dict[str, str]]:
    """The answers posted in `data` (a QueryDict), and an error message per linkId."""
    answers: Answers = {}
    errors: dict[str, str] = {}
    for item in walk(items):
        if not item.is_question:
            continue
        getlist = getattr(data, "getlist", None)
        raws: list[str] = (
            list(getlist(field_name(item.link_id)))
            if getlist is not None
            else list(data.get(field_name(item.link_id), []))
        )
        raws = [r.strip() for r in raws if r.strip()]
        if not item.repeats:
            raws = raws[:1]
        values: list[Value] = []
        try:
            values = [_parse_one(item, raw) for raw in raws]
        except ValueError as error:
            errors[item.link_id] = str(error)
        if item.type == "open-choice":
            other = str(data.get(other_name(item.link_id), "")).strip()
            if other and (item.repeats or not values):
                if len(other) > TEXT_LIMIT["string"]:
                    errors[item.link_id] = _("This answer is too long.")
                values.append(other)
        if values:
            answers[item.link_id] = values
    return answers, errors


def _compare(value: Value, condition: Condition) -> bool:
    wanted, operator = condition.answer, condition.operator
    if isinstance(wanted, tuple) or isinstance(value, tuple):
        if not (isinstance(wanted, tuple) and isinstance(value, tuple)):
            return operator == "!="
        same = value[1] == wanted[1] and (not value[0] or not wanted[0] or value[0] == wanted[0])
        return same if operator == "=" else (not same if operator == "!=" else False)
    if isinstance(wanted, bool) or isinstance(value, bool):
        same = isinstance(wanted, bool) and isinstance(value, bool) and value == wanted
        return same if operator == "=" else (not same if operator == "!=" else False)
    left: Any = value
    right: Any = wanted
    if isinstance(value, int | Decimal) and isinstance(wanted, int | Decimal):
        left, right = Decimal(value), Decimal(wanted)
    elif type(value) is not type(wanted):
        return operator == "!="
    if operator == "=":
        return bool(left == right)
    if operator == "!=":
        return bool(left != right)
    if operator == ">":
        return bool(left > right)
    if operator == "<":
        return bool(left < right)
    if operator == ">=":
        return bool(left >= right)
    return bool(left <= right)


def condition_holds(condition: Condition, values: Sequence[Value]) -> bool:
    if condition.operator == "exists":
        return bool(values) == condition.answer
    if not values:
        return False
    if condition.operator == "!=":
        # "!=": no answer is equal to the given one.
        return all(_compare(v, condition) for v in values)
    return any(_compare(v, condition) for v in values)


def _pass(items: tuple[Item, ...], answers: Answers, enabled: set[str], parent: bool) -> set[str]:
    found: set[str] = set()
    for item in items:
        holds = [
            condition_holds(c, answers.get(c.question, []) if c.question in enabled else [])
            for c in item.enable_when
        ]
        on = parent and (not holds or (all(holds) if item.enable_behavior == "all" else any(holds)))
        if on:
            found.add(item.link_id)
        found |= _pass(item.items, answers, enabled, on)
    return found


def enabled_ids(items: tuple[Item, ...], answers: Answers) -> set[str]:
    """The linkIds enabled under `answers` (a disabled group disables its items)."""
    enabled = {item.link_id for item in walk(items)}
    # A fixpoint: each pass can only switch off what depends on what was switched off.
    for _pass_number in range(len(enabled) + 1):
        again = _pass(items, answers, enabled, True)
        if again == enabled:
            break
        enabled = again
    return enabled


def answers_kept(items: tuple[Item, ...], answers: Answers) -> Answers:
    enabled = enabled_ids(items, answers)
    return {link: values for link, values in answers.items() if link in enabled}


def required_errors(items: tuple[Item, ...], answers: Answers) -> dict[str, str]:
    enabled = enabled_ids(items, answers)
    return {
        item.link_id: _("This question needs an answer.")
        for item in walk(items)
        if item.required and item.link_id in enabled and not answers.get(item.link_id)
    }


# --- FHIR QuestionnaireResponse items ---------------------------------------------------


def _fhir_value(item: Item, value: Value) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, int):
        return {"valueInteger": value}
    if isinstance(value, Decimal):
        return {"valueDecimal": float(value)}
    if isinstance(value, datetime.date):
        return {"valueDate": value.isoformat()}
    if isinstance(value, tuple):
        option = item.option(value[1])
        coding = dict(option.coding) if option is not None and option.coding else {"code": value[1]}
        return {"valueCoding": coding}
    return {"valueString": value}


def response_items(items: tuple[Item, ...], answers: Answers) -> list[dict[str, Any]]:
    """QuestionnaireResponse.item for `answers`, in the questionnaire's shape."""
    out: list[dict[str, Any]] = []
    for item in items:
        if item.type == "group":
            children = response_items(item.items, answers)
            if children:
                out.append({"linkId": item.link_id, "text": item.text, "item": children})
        elif item.is_question and answers.get(item.link_id):
            entry: dict[str, Any] = {"linkId": item.link_id}
            if item.text:
                entry["text"] = item.text
            entry["answer"] = [_fhir_value(item, v) for v in answers[item.link_id]]
            out.append(entry)
    return out


def _typed(answer: dict[str, Any]) -> Value | None:
    if "valueBoolean" in answer:
        return bool(answer["valueBoolean"])
    if "valueInteger" in answer:
        return int(answer["valueInteger"])
    if "valueDecimal" in answer:
        return Decimal(str(answer["valueDecimal"]))
    if "valueDate" in answer:
        return datetime.date.fromisoformat(answer["valueDate"])
    if "valueCoding" in answer:
        coding = answer["valueCoding"]
        return (str(coding.get("system", "")), str(coding.get("code", "")))
    if "valueString" in answer:
        return str(answer["valueString"])
    return None


def answers_from_response(resource: Mapping[str, Any]) -> Answers:
    """The answers stored in a QuestionnaireResponse resource (for resuming a form)."""
    answers: Answers = {}

    def visit(entries: Sequence[Mapping[str, Any]]) -> None:
        for entry in entries:
            values = [v for a in entry.get("answer") or [] if (v := _typed(a)) is not None]
            if values:
                answers[str(entry["linkId"])] = values
            visit(entry.get("item") or [])

    visit(resource.get("item") or [])
    return answers


def form_text(value: Value) -> str:
    """A value as the form posts it back (the option key for a coding)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return value[1]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def display_text(item: Item, value: Value) -> str:
    """A value as staff read it."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, tuple):
        option = item.option(value[1])
        return option.display if option is not None else value[1]
    if isinstance(value, str) and item.option(value) is not None:
        return item.option(value).display  # type: ignore[union-attr]
    return form_text(value)
