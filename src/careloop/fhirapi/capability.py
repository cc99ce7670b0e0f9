"""The CapabilityStatement and SMART discovery document, built from the registry.

They list only what is implemented: the registered types with read and search-type,
their search parameters, `$export`, Measure with read, `$evaluate-measure` and
`$care-gaps`, and the client-credentials token endpoint.
"""

from __future__ import annotations

from typing import Any

from careloop.core import clock
from careloop.fhirapi.measure import measure_capability
from careloop.fhirapi.registry import REGISTRY, instant

SMART_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
EXPORT_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"


def _resource(name: str) -> dict[str, Any]:
    provider = REGISTRY[name]
    entry: dict[str, Any] = {
        "type": name,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "searchParam": [
            {"name": param.name, "type": param.type} for param in provider.params.values()
        ],
    }
    if provider.profile:
        entry["supportedProfile"] = [provider.profile]
    if provider.includes:
        entry["searchInclude"] = sorted(provider.includes)
    if name == "Patient":
        entry["operation"] = [
            {"name": "export", "definition": f"{EXPORT_DEFINITION}/patient-export"}
        ]
    return entry


def capability_statement(*, base: str, token_url: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(clock.now()),
        "kind": "instance",
        "software": {"name": "careloop"},
        "implementation": {"description": "careloop FHIR R4 API", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}
                    ],
                    "service": [{"coding": [{"system": SMART_SERVICE, "code": "SMART-on-FHIR"}]}],
                    "description": "SMART Backend Services: client_credentials with a signed JWT",
                },
                "resource": [*map(_resource, REGISTRY), _group(), measure_capability()],
            }
        ],
    }


def _group() -> dict[str, Any]:
    return {
        "type": "Group",
        "interaction": [],
        "operation": [{"name": "export", "definition": f"{EXPORT_DEFINITION}/group-export"}],
    }


def smart_configuration(*, token_url: str) -> dict[str, Any]:
    return {
        "token_endpoint": token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/*.read", "system/*.rs"]
        + [f"system/{name}.read" for name in REGISTRY]
        + [f"system/{name}.read" for name in ("Measure", "Composition", "DetectedIssue")],
        "capabilities": ["client-confidential-asymmetric"],
    }
