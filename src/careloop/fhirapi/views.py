"""The FHIR API's HTTP views: thin, each parses the request and calls search or export."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl

from django.http import FileResponse, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse

from careloop.fhirapi import export, search
from careloop.fhirapi.auth import Caller
from careloop.fhirapi.capability import capability_statement, smart_configuration
from careloop.fhirapi.models import ExportStatus
from careloop.fhirapi.oauth import OAuthError, token_issue
from careloop.fhirapi.outcome import FhirError, fhir_response, not_found
from careloop.fhirapi.registry import Provider
from careloop.fhirapi.scopes import READ, SEARCH
from careloop.security.ratelimit import client_address, ratelimit_hit

TOKEN_RATE_SCOPE = "token.ip"  # noqa: S105 - a rate-limit bucket name


def fhir_base(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("fhir:metadata")).removesuffix("/metadata")


def token_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("fhir:token"))


def metadata(request: HttpRequest) -> HttpResponse:
    return fhir_response(
        capability_statement(base=fhir_base(request), token_url=token_url(request))
    )


def smart_config(request: HttpRequest) -> HttpResponse:
    response = fhir_response(smart_configuration(token_url=token_url(request)))
    response["Content-Type"] = "application/json"
    return response


def token(request: HttpRequest) -> HttpResponse:
    """The OAuth token endpoint; its answers are OAuth JSON, not OperationOutcomes."""
    if not ratelimit_hit(scope=TOKEN_RATE_SCOPE, key=client_address(request)):
        raise FhirError(429, "throttled", "too many token requests; wait a minute")
    form = {key: str(value) for key, value in request.POST.items()}
    try:
        issued = token_issue(request=request, form=form, token_url=token_url(request))
    except OAuthError as error:
        refusal = {"error": error.error, "error_description": error.why}
        answer = fhir_response(refusal, error.status, Cache_Control="no-store")
        answer["Content-Type"] = "application/json"
        return answer
    body: dict[str, str | int] = {
        "access_token": issued.raw,
        "token_type": "bearer",
        "expires_in": issued.expires_in,
        "scope": " ".join(issued.scopes),
    }
    response = fhir_response(body, Cache_Control="no-store")
    response["Content-Type"] = "application/json"
    return response


def read(caller: Caller, provider: Provider, resource_id: str) -> HttpResponse:
    pk = provider.to_pk(resource_id)
    row = provider.rows().filter(pk=pk).first() if pk is not None else None
    patient_id = _patient_id(provider, row)
    caller.require(provider, READ, patient_id=patient_id)
    if row is None:
        raise not_found()
    caller.audit(
        "fhir.read", resource_type=provider.type, resource_id=str(row.pk), patient_id=patient_id
    )
    return fhir_response(provider.serialize(row, caller.readable))


def _patient_id(provider: Provider, row: object) -> uuid.UUID | None:
    if row is None or provider.patient_column is None:
        return None
    value = getattr(row, "pk" if provider.patient_column == "id" else provider.patient_column)
    return value if isinstance(value, uuid.UUID) else None


def _strict(request: HttpRequest) -> bool:
    return "handling=strict" in request.headers.get("Prefer", "").replace(" ", "")


def search_get(caller: Caller, provider: Provider) -> HttpResponse:
    request = caller.request
    base = fhir_base(request)
    if cursor_id := request.GET.get("_cursor"):
        criteria, after = search.cursor_load(caller, provider, cursor_id)
        self_link = request.build_absolute_uri()
    else:
        pairs = list(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True))
        criteria = search.compile_criteria(provider, pairs, strict=_strict(request), posted=False)
        after = ""
        self_link = request.build_absolute_uri()
    page = search.search_page(caller, provider, criteria, after)
    return fhir_response(
        search.bundle(caller, provider, criteria, page, base=base, self_link=self_link)
    )


def search_post(caller: Caller, provider: Provider) -> HttpResponse:
    """POST `<Type>/_search`: the criteria in a form body, out of every URL and log."""
    request = caller.request
    caller.require(provider, SEARCH)
    form = (request.content_type or "").startswith("application/x-www-form-urlencoded")
    if request.body and not form:
        raise FhirError(
            415, "not-supported", "POST _search takes application/x-www-form-urlencoded"
        )
    pairs = list(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    pairs += list(parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True))
    criteria = search.compile_criteria(provider, pairs, strict=_strict(request), posted=True)
    page = search.search_page(caller, provider, criteria, "")
    base = fhir_base(request)
    # The self link is a cursor too: the criteria may identify a person.
    first = search.cursor_save(caller, provider, criteria, "")
    self_link = f"{base}/{provider.type}?_cursor={first.pk}"
    return fhir_response(
        search.bundle(caller, provider, criteria, page, base=base, self_link=self_link)
    )


def export_kickoff(caller: Caller, group: str = "") -> HttpResponse:
    request = caller.request
    if "respond-async" not in request.headers.get("Prefer", "respond-async"):
        raise FhirError(
            400, "invalid", "$export answers asynchronously: send Prefer: respond-async"
        )
    params = {key: str(value) for key, value in request.GET.items()}
    job = export.export_start(
        caller=caller, group=group, params=params, url=request.build_absolute_uri()
    )
    status_url = request.build_absolute_uri(
        reverse("fhir:export_status", kwargs={"job_id": job.pk})
    )
    return HttpResponse(status=202, headers={"Content-Location": status_url})


def export_status(caller: Caller, job_id: uuid.UUID) -> HttpResponse:
    if caller.request.method == "DELETE":
        export.export_cancel(caller=caller, job_id=job_id)
        return HttpResponse(status=202)
    job = export.export_get(caller=caller, job_id=job_id)
    if job.status in (ExportStatus.QUEUED, ExportStatus.RUNNING):
        return HttpResponse(
            status=202, headers={"X-Progress": job.progress or job.status, "Retry-After": "2"}
        )
    if job.status == ExportStatus.FAILED:
        raise FhirError(500, "exception", "the export failed; start a new one")
    manifest = {
        "transactionTime": job.transaction_time.isoformat().replace("+00:00", "Z"),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": item["type"],
                "url": caller.request.build_absolute_uri(
                    reverse(
                        "fhir:export_file", kwargs={"job_id": job.pk, "file_name": item["name"]}
                    )
                ),
                "count": item["count"],
            }
            for item in job.files
        ],
        "error": [],
    }
    response = fhir_response(manifest)
    response["Content-Type"] = "application/json"
    return response


def export_file(caller: Caller, job_id: uuid.UUID, file_name: str) -> HttpResponseBase:
    path = export.export_file(caller=caller, job_id=job_id, name=file_name)
    return FileResponse(path.open("rb"), content_type="application/fhir+ndjson")
