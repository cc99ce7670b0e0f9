"""A FHIR R4 Questionnaire read into the items careloop renders, or refused with reasons.

The JSON is parsed by `fhir.resources` (its R4B models: the Questionnaire resource is
the same as R4's), which checks the structure and the datatypes; careloop then checks
what it renders: the supported item types, unique linkIds, answer options for choice
items, and enableWhen conditions that name an existing question with an operator and
an answer of a type that question can compare.

Texts in other languages come the FHIR way: the `translation` extension (`lang`,
`content`) on the primitive's `_text`, `_title`, `valueCoding._display` or
`_valueString` element. They are kept beside the base text (`translations`), and
`items_in_language` gives the items as a patient reading that language sees them.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire
from pydantic import ValidationError

SUPPORTED_TYPES = (
    "group",
    "display",
    "string",
    "text",
    "boolean",
    "integer",
    "decimal",
    "date",
    "choice",
    "open-choice",
)
QUESTION_TYPES = tuple(t for t in SUPPORTED_TYPES if t not in ("group", "display"))
OPERATORS = ("exists", "=", "!=", ">", "<", ">=", "<=")
STATUSES = ("draft", "active", "retired", "unknown")
ANSWER_KEYS = (
    "answerBoolean",
    "answerDecimal",
    "answerInteger",
    "answerDate",
    "answerString",
    "answerCoding",
)
MAX_ERRORS = 10
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"

# (language tag, text) pairs from the `translation` extensions of one primitive.
Translations = tuple[tuple[str, str], ...]


class QuestionnaireInvalid(ValueError):
    """The JSON is not a Questionnaire careloop can render; `errors` says why, line by line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


Value = bool | int | Decimal | datetime.date | str | tuple[str, str]


@dataclass(frozen=True)
class Option:
    key: str  # what the form posts: the coding's code, or the string itself
    display: str
    coding: dict[str, str] | None = None
    display_translations: Translations = ()


@dataclass(frozen=True)
class Condition:
    question: str
    operator: str
    answer: Value


@dataclass(frozen=True)
class Item:
    link_id: str
    text: str
    type: str
    required: bool = False
    repeats: bool = False
    options: tuple[Option, ...] = ()
    enable_when: tuple[Condition, ...] = ()
    enable_behavior: str = "all"
    items: tuple[Item, ...] = field(default_factory=tuple)
    text_translations: Translations = ()

    @property
    def is_question(self) -> bool:
        return self.type in QUESTION_TYPES

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)


@dataclass(frozen=True)
class Parsed:
    url: str
    version: str
    title: str
    status: str
    resource: dict[str, Any]
    items: tuple[Item, ...]


def walk(items: tuple[Item, ...]) -> list[Item]:
    """Every item, depth first in document order."""
    found: list[Item] = []
    for item in items:
        found.append(item)
        found.extend(walk(item.items))
    return found


def translations(element: Any) -> Translations:
    """The `translation` extensions on a primitive's `_<name>` element, as (lang,
    content); anything else there (other extensions, a malformed entry) is ignored."""
    if not isinstance(element, Mapping):
        return ()
    found = []
    for extension in element.get("extension") or []:
        if not isinstance(extension, Mapping) or extension.get("url") != TRANSLATION:
            continue
        parts = {
            part.get("url"): part
            for part in extension.get("extension") or []
            if isinstance(part, Mapping)
        }
        lang = (parts.get("lang") or {}).get("valueCode")
        content = parts.get("content") or {}
        text = content.get("valueString") or content.get("valueMarkdown")
        if isinstance(lang, str) and lang.strip() and isinstance(text, str) and text.strip():
            found.append((lang.strip(), text))
    return tuple(found)


def translated(text: str, found: Translations, language: str) -> str:
    """`text` as a reader of `language` (a BCP 47 tag such as "es" or "es-MX") sees it:
    the translation into exactly that language, else one into its primary language
    ("es-MX" for "es", "es" for "es-MX"), else the base text."""
    wanted = language.strip().lower()
    primary = wanted.split("-")[0]
    exact = next((content for lang, content in found if lang.lower() == wanted), None)
    if exact is not None:
        return exact
    return next((content for lang, content in found if lang.lower().split("-")[0] == primary), text)


def items_in_language(items: tuple[Item, ...], language: str) -> tuple[Item, ...]:
    """The items with their texts and option displays in `language` where the
    questionnaire has them (the base text elsewhere). Option keys and codings stay as
    they are, so answers are stored the same whatever language the form was read in."""
    return tuple(
        replace(
            item,
            text=translated(item.text, item.text_translations, language),
            options=tuple(
                replace(o, display=translated(o.display, o.display_translations, language))
                for o in item.options
            ),
            items=items_in_language(item.items, language),
        )
        for item in items
    )


def title_in_language(resource: Mapping[str, Any], title: str, language: str) -> str:
    """The questionnaire's title in `language` (its `_title` translations), else `title`."""
    return translated(title, translations(resource.get("_title")), language)


def _pydantic_errors(error: ValidationError) -> list[str]:
    lines = []
    for problem in error.errors()[:MAX_ERRORS]:
        where = ".".join(str(part) for part in problem["loc"]) or "resource"
        lines.append(f"{where}: {problem['msg']}")
    return lines


def _condition(raw: dict[str, Any], where: str, errors: list[str]) -> Condition | None:
    operator = raw.get("operator")
    question = raw.get("question")
    answers = [key for key in ANSWER_KEYS if key in raw]
    if operator not in OPERATORS:
        errors.append(f"{where}: operator {operator!r} is not one of {', '.join(OPERATORS)}")
        return None
    if len(answers) != 1:
        errors.append(
            f"{where}: needs exactly one answer of a supported type ({', '.join(ANSWER_KEYS)})"
        )
        return None
    value = raw[answers[0]]
    answer: Value
    if answers[0] == "answerCoding":
        answer = (str(value.get("system", "")), str(value.get("code", "")))
    elif answers[0] == "answerDecimal":
        answer = Decimal(str(value))
    elif answers[0] == "answerDate":
        answer = datetime.date.fromisoformat(str(value))
    else:
        answer = value
    if operator == "exists" and not isinstance(answer, bool):
        errors.append(f"{where}: operator 'exists' takes answerBoolean")
        return None
    return Condition(question=str(question), operator=operator, answer=answer)


def _options(raw: dict[str, Any], where: str, errors: list[str]) -> tuple[Option, ...]:
    options = []
    for index, entry in enumerate(raw.get("answerOption") or []):
        if "valueCoding" in entry:
            coding = entry["valueCoding"]
            code = str(coding.get("code", ""))
            if not code:
                errors.append(f"{where}.answerOption[{index}]: valueCoding needs a code")
                continue
            kept = {k: str(coding[k]) for k in ("system", "code", "display") if k in coding}
            options.append(
                Option(
                    key=code,
                    display=str(coding.get("display") or code),
                    coding=kept,
                    display_translations=translations(coding.get("_display")),
                )
            )
        elif "valueString" in entry:
            text = str(entry["valueString"])
            options.append(
                Option(
                    key=text,
                    display=text,
                    display_translations=translations(entry.get("_valueString")),
                )
            )
        else:
            errors.append(
                f"{where}.answerOption[{index}]: only valueCoding and valueString are supported"
            )
    keys = [o.key for o in options]
    if len(set(keys)) != len(keys):
        errors.append(f"{where}: two answer options have the same code")
    return tuple(options)


def _item(raw: dict[str, Any], where: str, errors: list[str]) -> Item:
    kind = raw.get("type")
    link_id = str(raw.get("linkId", ""))
    where = f"{where} (linkId {link_id})"
    if kind not in SUPPORTED_TYPES:
        errors.append(f"{where}: type {kind!r} is not supported ({', '.join(SUPPORTED_TYPES)})")
    options = _options(raw, where, errors)
    if kind in ("choice", "open-choice") and not options:
        errors.append(f"{where}: a {kind} item needs answerOption entries")
    if raw.get("repeats") and kind not in ("choice", "open-choice", "group"):
        errors.append(f"{where}: repeats is supported on choice items only")
    behavior = raw.get("enableBehavior", "all")
    conditions = [
        c
        for index, entry in enumerate(raw.get("enableWhen") or [])
        if (c := _condition(entry, f"{where}.enableWhen[{index}]", errors)) is not None
    ]
    if len(conditions) > 1 and "enableBehavior" not in raw:
        errors.append(f"{where}: enableBehavior (all or any) is required with several enableWhen")
    children = tuple(
        _item(child, f"{where}.item[{index}]", errors)
        for index, child in enumerate(raw.get("item") or [])
    )
    if kind == "group" and not children:
        errors.append(f"{where}: a group needs items")
    return Item(
        link_id=link_id,
        text=str(raw.get("text") or ""),
        type=str(kind),
        required=bool(raw.get("required")) and kind not in ("group", "display"),
        repeats=bool(raw.get("repeats")),
        options=options,
        enable_when=tuple(conditions),
        enable_behavior=behavior if behavior in ("all", "any") else "all",
        items=children,
        text_translations=translations(raw.get("_text")),
    )


def _check_references(items: tuple[Item, ...], errors: list[str]) -> None:
    every = walk(items)
    ids = [i.link_id for i in every]
    errors.extend(
        f"linkId {duplicate!r} is used more than once"
        for duplicate in sorted({i for i in ids if ids.count(i) > 1})
    )
    by_id = {i.link_id: i for i in every}
    for item in every:
        for condition in item.enable_when:
            target = by_id.get(condition.question)
            if target is None or not target.is_question:
                errors.append(
                    f"linkId {item.link_id}: enableWhen names {condition.question!r}, "
                    "which is not a question of this form"
                )
            elif condition.question == item.link_id:
                errors.append(f"linkId {item.link_id}: enableWhen names the item itself")


def questionnaire_parse(text: str | bytes) -> Parsed:
    """The Questionnaire in `text`, or `QuestionnaireInvalid` saying what is wrong."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise QuestionnaireInvalid([f"not JSON: {error}"]) from None
    return questionnaire_from_dict(raw)


def questionnaire_from_dict(raw: Any) -> Parsed:
    if not isinstance(raw, dict) or raw.get("resourceType") != "Questionnaire":
        raise QuestionnaireInvalid(
            ['not a FHIR Questionnaire: "resourceType" must be "Questionnaire"']
        )
    try:
        FhirQuestionnaire.model_validate(raw)
    except ValidationError as error:
        raise QuestionnaireInvalid(_pydantic_errors(error)) from None
    except (ValueError, TypeError) as error:
        raise QuestionnaireInvalid([str(error)[:300]]) from None
    errors: list[str] = []
    if raw.get("status") not in STATUSES:
        errors.append(f"status must be one of {', '.join(STATUSES)}")
    if not raw.get("url"):
        errors.append("url is required: it names the questionnaire (with its version)")
    if not raw.get("title"):
        errors.append("title is required: patients see it")
    if not raw.get("item"):
        errors.append("the questionnaire has no items")
    try:
        items = tuple(
            _item(entry, f"item[{index}]", errors)
            for index, entry in enumerate(raw.get("item") or [])
        )
    except (ValueError, TypeError, AttributeError, ArithmeticError) as error:
        raise QuestionnaireInvalid([f"an enableWhen answer cannot be read: {error}"]) from None
    _check_references(items, errors)
    if errors:
        raise QuestionnaireInvalid(errors[:MAX_ERRORS])
    return Parsed(
        url=str(raw["url"]),
        version=str(raw.get("version") or "1"),
        title=str(raw["title"]),
        status=str(raw["status"]),
        resource=raw,
        items=items,
    )
