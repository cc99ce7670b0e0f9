"""enableWhen as the R4 specification reads: operators, all/any, chains, and groups;
a hidden question is never required and its answers are dropped."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

from careloop.intake.answers import answers_kept, enabled_ids, required_errors
from careloop.intake.definition import Item, questionnaire_from_dict


def _items(*items: dict[str, Any]) -> tuple[Item, ...]:
    return questionnaire_from_dict(
        {
            "resourceType": "Questionnaire",
            "url": "urn:t",
            "title": "t",
            "status": "active",
            "item": list(items),
        }
    ).items


def _when(question: str, operator: str, **answer: Any) -> dict[str, Any]:
    return {"question": question, "operator": operator, **answer}


AGE = {"linkId": "age", "text": "Age", "type": "integer"}
COLOUR = {
    "linkId": "colour",
    "text": "Colour",
    "type": "choice",
    "repeats": True,
    "answerOption": [{"valueCoding": {"system": "urn:c", "code": c}} for c in ("red", "blue")],
}


@pytest.mark.parametrize(
    ("operator", "answer", "age", "shown"),
    [
        ("=", {"answerInteger": 40}, 40, True),
        ("=", {"answerInteger": 40}, 41, False),
        ("!=", {"answerInteger": 40}, 41, True),
        ("!=", {"answerInteger": 40}, 40, False),
        (">", {"answerInteger": 40}, 41, True),
        (">", {"answerInteger": 40}, 40, False),
        ("<", {"answerInteger": 40}, 39, True),
        (">=", {"answerInteger": 40}, 40, True),
        ("<=", {"answerInteger": 40}, 41, False),
        (">", {"answerDecimal": 39.5}, 40, True),
        ("exists", {"answerBoolean": True}, 1, True),
        ("exists", {"answerBoolean": True}, None, False),
        ("exists", {"answerBoolean": False}, None, True),
        ("=", {"answerInteger": 40}, None, False),
        ("!=", {"answerInteger": 40}, None, False),
    ],
)
def test_operators_on_a_number(
    operator: str, answer: dict[str, Any], age: int | None, shown: bool
) -> None:
    items = _items(
        AGE,
        {
            "linkId": "x",
            "text": "x",
            "type": "string",
            "enableWhen": [_when("age", operator, **answer)],
        },
    )
    answers = {} if age is None else {"age": [age]}
    assert ("x" in enabled_ids(items, answers)) is shown


def test_codings_match_on_code_and_system_and_repeats_match_any_answer() -> None:
    items = _items(
        COLOUR,
        {
            "linkId": "x",
            "text": "x",
            "type": "string",
            "enableWhen": [_when("colour", "=", answerCoding={"system": "urn:c", "code": "blue"})],
        },
    )
    assert "x" in enabled_ids(items, {"colour": [("urn:c", "red"), ("urn:c", "blue")]})
    assert "x" not in enabled_ids(items, {"colour": [("urn:c", "red")]})
    assert "x" not in enabled_ids(items, {"colour": [("urn:other", "blue")]})


def test_dates_and_strings_compare() -> None:
    items = _items(
        {"linkId": "d", "text": "d", "type": "date"},
        {"linkId": "s", "text": "s", "type": "string"},
        {
            "linkId": "x",
            "text": "x",
            "type": "string",
            "enableWhen": [_when("d", "<", answerDate="2020-01-01")],
        },
        {
            "linkId": "y",
            "text": "y",
            "type": "string",
            "enableWhen": [_when("s", "=", answerString="yes")],
        },
    )
    on = enabled_ids(items, {"d": [datetime.date(2019, 5, 1)], "s": ["no"]})
    assert "x" in on and "y" not in on


def test_enable_behavior_all_and_any() -> None:
    conditions = [_when("age", ">", answerInteger=18), _when("age", "<", answerInteger=65)]
    both = _items(
        AGE,
        {
            "linkId": "x",
            "text": "x",
            "type": "string",
            "enableWhen": conditions,
            "enableBehavior": "all",
        },
    )
    either = _items(
        AGE,
        {
            "linkId": "x",
            "text": "x",
            "type": "string",
            "enableWhen": conditions,
            "enableBehavior": "any",
        },
    )
    assert "x" not in enabled_ids(both, {"age": [70]})
    assert "x" in enabled_ids(either, {"age": [70]})
    assert "x" in enabled_ids(both, {"age": [30]})


def test_a_chain_switches_off_when_its_first_link_does_and_a_group_hides_its_items() -> None:
    items = _items(
        {"linkId": "smoker", "text": "?", "type": "boolean"},
        {
            "linkId": "packs",
            "text": "packs",
            "type": "integer",
            "enableWhen": [_when("smoker", "=", answerBoolean=True)],
        },
        {
            "linkId": "advice",
            "text": "advice",
            "type": "boolean",
            "enableWhen": [_when("packs", ">", answerInteger=1)],
        },
        {
            "linkId": "g",
            "text": "Group",
            "type": "group",
            "enableWhen": [_when("smoker", "=", answerBoolean=True)],
            "item": [{"linkId": "inner", "text": "inner", "type": "string", "required": True}],
        },
    )
    # Packs was answered before the patient changed "smoker" to no: it no longer counts.
    answers = {"smoker": [False], "packs": [3], "inner": ["x"]}
    on = enabled_ids(items, answers)
    assert on == {"smoker"}
    assert answers_kept(items, answers) == {"smoker": [False]}
    assert required_errors(items, answers) == {}
    assert enabled_ids(items, {"smoker": [True], "packs": [Decimal(3)]}) >= {
        "packs",
        "advice",
        "g",
        "inner",
    }
    assert set(required_errors(items, {"smoker": [True]})) == {"inner"}
