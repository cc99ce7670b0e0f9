"""The FHIR R4 QuestionnaireResponse careloop stores and exports, validated as emitted."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse as FhirQuestionnaireResponse,
)

from careloop.intake.models import Questionnaire


def response_resource(
    *,
    response_id: uuid.UUID,
    questionnaire: Questionnaire,
    patient_id: uuid.UUID,
    status: str,
    authored: datetime.datetime,
    items: list[dict[str, Any]],
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": str(response_id),
        "questionnaire": f"{questionnaire.url}|{questionnaire.version}",
        "status": status,
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": authored.astimezone(datetime.UTC).isoformat(),
    }
    if items:
        resource["item"] = items
    # What careloop emits must be a valid resource; a bug here fails loudly, unsaved.
    FhirQuestionnaireResponse.model_validate(resource)
    return resource
