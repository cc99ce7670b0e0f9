"""The journey editor's form: a definition to fields and back, and the editing actions.

The editor is a plain HTML form (no script needed): every step is a row of named
fields (`s<i>-<field>`), and a button says what to do — save, add a step, remove or
move one. Anything but "save" re-renders the edited definition unsaved, so an admin
can build a journey step by step and save once; saving validates it
(`journey_validate`) and shows each error beside its step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import QueryDict

# The fields each kind of step shows, in order.
FIELDS: dict[str, tuple[str, ...]] = {
    "wait": ("mode", "for", "anchor", "offset", "at_local", "if_past"),
    "send": ("template", "channels", "purpose"),
    "branch": ("if", "then", "else"),
    "task": ("title", "queue", "due"),
    "update": ("field", "value"),
    "exit": ("reason",),
}
NEW_STEP: dict[str, dict[str, Any]] = {
    "wait": {"kind": "wait", "for": "P1D"},
    "send": {"kind": "send", "template": "", "channels": ["sms", "email"]},
    "branch": {"kind": "branch", "if": "appointment_booked", "then": "end"},
    "task": {"kind": "task", "title": "Call the patient"},
    "update": {"kind": "update", "field": "tag", "value": "needs-call"},
    "exit": {"kind": "exit", "reason": "done"},
}


@dataclass
class Edit:
    definition: dict[str, Any]
    name: str
    enabled: bool
    action: str


def step_fields(step: dict[str, Any]) -> dict[str, str]:
    """A step as the strings its form fields show."""
    kind = step.get("kind", "")
    values: dict[str, str] = {"id": str(step.get("id", ""))}
    if kind == "wait":
        until = step.get("until") or {}
        values.update(
            mode="until" if "until" in step else "for",
            anchor=str(until.get("anchor", "subject")),
            offset=str(until.get("offset", "")),
            at_local=str(until.get("at_local", "")),
            if_past=str(step.get("if_past", "run")),
        )
        values["for"] = str(step.get("for", ""))
    elif kind == "send":
        values.update(
            template=str(step.get("template", "")),
            channels=", ".join(step.get("channels", [])),
            purpose=str(step.get("purpose", "")),
        )
    else:
        for name in FIELDS.get(kind, ()):
            if name in step:
                values[name] = str(step[name])
    return values


def _step_from(data: QueryDict, i: int) -> dict[str, Any]:
    def get(name: str) -> str:
        return (data.get(f"s{i}-{name}") or "").strip()

    kind = get("kind")
    step: dict[str, Any] = {"kind": kind}
    if get("id"):
        step["id"] = get("id")
    if kind == "wait":
        if get("mode") == "until":
            until: dict[str, str] = {"anchor": get("anchor") or "subject"}
            if get("offset"):
                until["offset"] = get("offset")
            if get("at_local"):
                until["at_local"] = get("at_local")
            step["until"] = until
            if get("if_past") and get("if_past") != "run":
                step["if_past"] = get("if_past")
        else:
            step["for"] = get("for")
    elif kind == "send":
        step["template"] = get("template")
        step["channels"] = [c.strip() for c in get("channels").split(",") if c.strip()]
        if get("purpose"):
            step["purpose"] = get("purpose")
    else:
        for name in FIELDS.get(kind, ()):
            if get(name):
                step[name] = get(name)
    return step


def edit_from_post(data: QueryDict, current: dict[str, Any]) -> Edit:
    """The definition the form holds, with the button's action applied (unless save)."""
    try:
        count = max(0, min(int(data.get("step-count", "0")), 200))
    except ValueError:
        count = 0
    steps = [_step_from(data, i) for i in range(count)]
    exits = [e for e in data.getlist("exits") if e]
    # No button named (a bare POST): show the form again, save nothing.
    action = data.get("action", "show")
    verb, _, index_text = action.partition(":")
    index = int(index_text) if index_text.isdigit() else -1
    if verb == "add":
        kind = data.get("new-kind", "send")
        steps.append(dict(NEW_STEP.get(kind, NEW_STEP["send"])))
    elif verb == "delete" and 0 <= index < len(steps):
        del steps[index]
    elif verb == "up" and 0 < index < len(steps):
        steps[index - 1], steps[index] = steps[index], steps[index - 1]
    elif verb == "down" and 0 <= index < len(steps) - 1:
        steps[index + 1], steps[index] = steps[index], steps[index + 1]
    definition = {**current, "steps": steps, "exits": exits}
    return Edit(
        definition=definition,
        name=(data.get("name") or "").strip(),
        enabled=data.get("enabled") == "on",
        action=verb,
    )


def errors_by_step(errors: list[str]) -> tuple[dict[int, list[str]], list[str]]:
    """Errors keyed by step index (0-based) and the journey-wide rest."""
    by_step: dict[int, list[str]] = {}
    rest: list[str] = []
    for error in errors:
        head, _, tail = error.partition(": ")
        if head.startswith("step ") and head[5:].isdigit():
            by_step.setdefault(int(head[5:]) - 1, []).append(tail)
        else:
            rest.append(error)
    return by_step, rest
