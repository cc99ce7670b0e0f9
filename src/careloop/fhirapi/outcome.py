"""FHIR responses: `application/fhir+json` bodies, and an OperationOutcome for every error.

Views raise `FhirError`; `fhir_endpoint` (careloop.fhirapi.auth) turns it into an
OperationOutcome with the status it names. Diagnostics are written by code and never
echo a parameter's value, which may be a name or an identifier.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from django.http import HttpResponse

FHIR_JSON: Final = "application/fhir+json"


class FhirError(Exception):
    """An error a client caused (or may be told about), with its HTTP status."""

    def __init__(
        self, status: int, code: str, diagnostics: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.headers = headers or {}


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def fhir_response(body: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(orjson.dumps(body), status=status, content_type=FHIR_JSON)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def error_response(error: FhirError) -> HttpResponse:
    response = fhir_response(operation_outcome(error.code, error.diagnostics), error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def bad_request(diagnostics: str) -> FhirError:
    return FhirError(400, "invalid", diagnostics)


def not_found() -> FhirError:
    # One answer for "no such resource" and "not yours to know about".
    return FhirError(404, "not-found", "no such resource")
