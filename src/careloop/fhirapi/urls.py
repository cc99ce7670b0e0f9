"""/fhir/r4/: one read, search and POST _search route per registered type, plus metadata,
SMART discovery, the token endpoint, Bulk Data `$export`, and the quality measures:
`Measure/[id]`, `Measure/[id]/$evaluate-measure` and DEQM `Measure/$care-gaps`.

Each data route carries `careloop_fhir_permission` (careloop.fhirapi.auth) for the
route matrix; the discovery routes and the token endpoint are public.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, re_path

from careloop.fhirapi import (
    care_gaps,
    evaluate_measure,
    measure,
    resources,  # noqa: F401 - fills the registry
    views,
)
from careloop.fhirapi.auth import OWNER, Caller, fhir_endpoint
from careloop.fhirapi.outcome import FhirError
from careloop.fhirapi.registry import REGISTRY, Provider
from careloop.security.permissions import Op, Resource

app_name = "fhir"
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _type_routes(provider: Provider) -> list[URLPattern]:
    declared = (Op.READ, provider.resource)

    @fhir_endpoint(declared=declared)
    def search(caller: Caller) -> HttpResponse:
        return views.search_get(caller, provider)

    @fhir_endpoint(methods=("POST",), declared=declared)
    def search_post(caller: Caller) -> HttpResponse:
        return views.search_post(caller, provider)

    @fhir_endpoint(declared=declared)
    def read(caller: Caller, resource_id: str) -> HttpResponse:
        return views.read(caller, provider, resource_id)

    name = provider.type
    return [
        path(name, search, name=f"{name}-search"),
        path(f"{name}/_search", search_post, name=f"{name}-search-post"),
        path(f"{name}/<str:resource_id>", read, name=f"{name}-read"),
    ]


@fhir_endpoint(declared=(Op.READ, Resource.DEMOGRAPHICS))
def patient_export(caller: Caller) -> HttpResponse:
    return views.export_kickoff(caller)


@fhir_endpoint(declared=(Op.READ, Resource.DEMOGRAPHICS))
def group_export(caller: Caller, group_id: str) -> HttpResponse:
    return views.export_kickoff(caller, group=group_id)


@fhir_endpoint(methods=("GET", "DELETE"), declared=OWNER)
def export_status(caller: Caller, job_id: Any) -> HttpResponse:
    return views.export_status(caller, job_id)


@fhir_endpoint(declared=OWNER)
def export_file(caller: Caller, job_id: Any, file_name: str) -> HttpResponseBase:
    return views.export_file(caller, job_id, file_name)


# Measure read needs the figures' permission (a definition, no patient in it); so does
# $evaluate-measure, whose individual reports also need clinical read (checked inside).
@fhir_endpoint(declared=(Op.READ, measure.MEASURE_RESOURCE))
def measure_read(caller: Caller, measure_id: str) -> HttpResponse:
    return measure.measure_read(caller, measure_id)


@fhir_endpoint(methods=("GET", "POST"), declared=(Op.READ, measure.MEASURE_RESOURCE))
def measure_evaluate(caller: Caller, measure_id: str) -> HttpResponse:
    return evaluate_measure.evaluate_measure(caller, measure_id)


@fhir_endpoint(methods=("GET", "POST"), declared=(Op.READ, Resource.CLINICAL))
def measure_care_gaps(caller: Caller) -> HttpResponseBase:
    return care_gaps.care_gaps(caller)


def _public(view: Any, methods: tuple[str, ...] = ("GET",)) -> Any:
    return fhir_endpoint(methods=methods)(view)


def _unknown(request: HttpRequest, rest: str) -> HttpResponse:
    raise FhirError(404, "not-supported", "careloop does not serve this type or operation")


urlpatterns = [
    path("metadata", _public(views.metadata), name="metadata"),
    path(
        ".well-known/smart-configuration", _public(views.smart_config), name="smart_configuration"
    ),
    path("auth/token", _public(views.token, ("POST",)), name="token"),
    # Before the per-type routes, so "$export" is not taken for a Patient id.
    path("Patient/$export", patient_export, name="patient_export"),
    path("Group/<str:group_id>/$export", group_export, name="group_export"),
    path("bulk-status/<uuid:job_id>", export_status, name="export_status"),
    path("bulk-files/<uuid:job_id>/<str:file_name>", export_file, name="export_file"),
    # Before Measure/<id>, so "$care-gaps" is not taken for a measure id.
    path("Measure/$care-gaps", measure_care_gaps, name="measure_care_gaps"),
    path("Measure/<str:measure_id>/$evaluate-measure", measure_evaluate, name="measure_evaluate"),
    path("Measure/<str:measure_id>", measure_read, name="Measure-read"),
    *[route for provider in REGISTRY.values() for route in _type_routes(provider)],
    re_path(r"^(?P<rest>.*)$", _public(_unknown, _ALL_METHODS), name="unknown"),
]
