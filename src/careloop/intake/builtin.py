"""The surveys careloop ships: satisfaction (CSAT, 1-5) and net promoter (NPS, 0-10).

Both are FHIR Questionnaires like any imported one, installed on first use
(`builtin_install`, idempotent on url + version). The CSAT survey is the one the
post-visit journey's `{{ link.form }}` opens.

They speak English and Spanish, the portal's languages: each text carries its Spanish
the FHIR way (the `translation` extension on `_title`, `_text` and `_display`), and
the portal shows the one of the page's language (careloop.intake.definition).
"""

from __future__ import annotations

from typing import Any

BASE = "https://careloop.example/fhir/Questionnaire"
CSAT_URL = f"{BASE}/csat"
NPS_URL = f"{BASE}/nps"
SCALE = "https://careloop.example/fhir/CodeSystem/survey-scale"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"

# code -> (English, Spanish)
_CSAT_LABELS = {
    1: ("Very dissatisfied", "Muy insatisfecho"),
    2: ("Dissatisfied", "Insatisfecho"),
    3: ("Neutral", "Neutral"),
    4: ("Satisfied", "Satisfecho"),
    5: ("Very satisfied", "Muy satisfecho"),
}


def _spanish(text: str) -> dict[str, Any]:
    """The `_<name>` element giving a text's Spanish (FHIR translation extension)."""
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": "es"},
                    {"url": "content", "valueString": text},
                ],
            }
        ]
    }


def _option(code: int, display: str, spanish: str = "") -> dict[str, Any]:
    coding: dict[str, Any] = {"system": SCALE, "code": str(code), "display": display}
    if spanish and spanish != display:
        coding["_display"] = _spanish(spanish)
    return {"valueCoding": coding}


CSAT: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": CSAT_URL,
    "version": "1",
    "name": "VisitSatisfaction",
    "title": "How was your visit?",
    "_title": _spanish("¿Cómo fue su visita?"),
    "status": "active",
    "item": [
        {
            "linkId": "satisfaction",
            "text": "Overall, how satisfied are you with your visit?",
            "_text": _spanish("En general, ¿qué tan satisfecho está con su visita?"),
            "type": "choice",
            "required": True,
            "answerOption": [
                _option(code, english, spanish) for code, (english, spanish) in _CSAT_LABELS.items()
            ],
        },
        {
            "linkId": "comment",
            "text": "Anything you would like to tell us?",
            "_text": _spanish("¿Hay algo que quiera decirnos?"),
            "type": "text",
        },
    ],
}

NPS: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": NPS_URL,
    "version": "1",
    "name": "NetPromoter",
    "title": "Would you recommend us?",
    "_title": _spanish("¿Nos recomendaría?"),
    "status": "active",
    "item": [
        {
            "linkId": "recommend",
            "text": (
                "How likely are you to recommend us to a friend or family member? "
                "(0 = not at all likely, 10 = extremely likely)"
            ),
            "_text": _spanish(
                "¿Qué tan probable es que nos recomiende a un amigo o familiar? "
                "(0 = nada probable, 10 = muy probable)"
            ),
            "type": "choice",
            "required": True,
            "answerOption": [_option(code, str(code)) for code in range(11)],
        },
        {
            "linkId": "comment",
            "text": "What is the main reason for your score?",
            "_text": _spanish("¿Cuál es la razón principal de su puntuación?"),
            "type": "text",
        },
    ],
}

# (definition, score kind, the scored linkId, sent after visits)
BUILTIN = ((CSAT, "csat", "satisfaction", True), (NPS, "nps", "recommend", False))
