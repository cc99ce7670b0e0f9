"""The surveys careloop ships: satisfaction (CSAT, 1-5) and net promoter (NPS, 0-10).

Both are FHIR Questionnaires like any imported one, installed on first use
(`builtin_install`, idempotent on url + version). The CSAT survey is the one the
post-visit journey's `{{ link.form }}` opens.
"""

from __future__ import annotations

from typing import Any

BASE = "https://careloop.example/fhir/Questionnaire"
CSAT_URL = f"{BASE}/csat"
NPS_URL = f"{BASE}/nps"
SCALE = "https://careloop.example/fhir/CodeSystem/survey-scale"

_CSAT_LABELS = {
    1: "Very dissatisfied",
    2: "Dissatisfied",
    3: "Neutral",
    4: "Satisfied",
    5: "Very satisfied",
}


def _option(code: int, display: str) -> dict[str, Any]:
    return {"valueCoding": {"system": SCALE, "code": str(code), "display": display}}


CSAT: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": CSAT_URL,
    "version": "1",
    "name": "VisitSatisfaction",
    "title": "How was your visit?",
    "status": "active",
    "item": [
        {
            "linkId": "satisfaction",
            "text": "Overall, how satisfied are you with your visit?",
            "type": "choice",
            "required": True,
            "answerOption": [_option(code, label) for code, label in _CSAT_LABELS.items()],
        },
        {
            "linkId": "comment",
            "text": "Anything you would like to tell us?",
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
    "status": "active",
    "item": [
        {
            "linkId": "recommend",
            "text": (
                "How likely are you to recommend us to a friend or family member? "
                "(0 = not at all likely, 10 = extremely likely)"
            ),
            "type": "choice",
            "required": True,
            "answerOption": [_option(code, str(code)) for code in range(11)],
        },
        {
            "linkId": "comment",
            "text": "What is the main reason for your score?",
            "type": "text",
        },
    ],
}

# (definition, score kind, the scored linkId, sent after visits)
BUILTIN = ((CSAT, "csat", "satisfaction", True), (NPS, "nps", "recommend", False))
