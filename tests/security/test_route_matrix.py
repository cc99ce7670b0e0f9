"""Every URL pattern × every role (and anonymous) × GET and POST, against the table.

The routes come from the resolver, recursively through includes, so a new route is in
the matrix the moment it is added. Each one is one of:

- public (`permissions.PUBLIC_ROUTES`): no data behind it; it must answer below 400;
- a staff page declaring `careloop_permission = (op, resource)` through
  `careloop.core.web.staff_page` (or `ANY_STAFF` through `staff_shell_page`): the
  anonymous visitor is sent to sign in, a role the table allows gets the page, any
  other role 403 (or 404);
- a JSON API endpoint declaring `careloop_api_permission` (careloop.api.urls): the same
  with a bearer token, and 401 without one; or `careloop_api_public`, which answers
  every caller alike;
- a signed webhook (`permissions.SIGNED_ROUTES`, careloop.outreach.views): no session
  plays any part; a request without the provider's signature is refused (403) alike for
  every caller, and the view carries `careloop_signed_webhook`;
- a FHIR API route declaring `careloop_fhir_permission` (careloop.fhirapi.auth): the same
  with a FHIR client's access token, the client acting with the role; or `"owner"` (an
  export's status and files), which answers only the client that started the export;
- a patient portal route (careloop.portal.web) declaring `careloop_portal`: `"public"`
  (sign-in and registration steps) answers everyone below 400; `"patient"` sends the
  anonymous visitor to the portal's sign-in, gives the patient (linked to the sample
  patient) the page, and refuses every staff role.

The expected answer for each role comes from `permissions.allowed`. A route with URL
arguments needs an example value in `SAMPLES`; the sample objects are visible to every
role the table allows (the clinician is on the sample patient's care team), so an
allowed role must get the page, not a 404.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from careloop.caregaps.models import MeasureRun, PatientMeasureResult
from careloop.clinical.models import ClinicalFact
from careloop.consent.models import ConsentDocument, ConsentRecord
from careloop.core import clock
from careloop.ehr.models import MatchReview, QuarantineItem, Source
from careloop.fhirapi.auth import OWNER as FHIR_OWNER
from careloop.fhirapi.export import export_run
from careloop.fhirapi.models import AccessToken, ExportJob
from careloop.fhirapi.models import Client as FhirClient
from careloop.fhirapi.oauth import token_digest
from careloop.patients.models import Patient, PatientNote
from careloop.portal.attachments import Upload
from careloop.portal.insurance import insurance_card_upload
from careloop.portal.messaging import thread_start
from careloop.portal.models import InsuranceCard, PortalAccount, Thread, ThreadAttachment
from careloop.portal.push_subscriptions import push_subscribe
from careloop.scheduling.models import AppointmentConflict, WaitlistEntry
from careloop.security.audit import audit_record
from careloop.security.models import Role, User
from careloop.security.permissions import (
    ANY_STAFF,
    PUBLIC_ROUTES,
    SCOPED_ROLES,
    SIGNED_ROUTES,
    allowed,
    is_staff_role,
)
from careloop.security.tokens import token_create
from tests.intake.builders import matrix_assignment, matrix_response
from tests.patients.builders import (
    add_appointment,
    add_contact,
    add_coverage,
    appointment_type,
    make_location,
    make_patient,
    make_provider,
)
from tests.portal.push_service import Browser
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login as sign_in

pytestmark = pytest.mark.django_db

LOGIN_PATH = "/accounts/login/"
PORTAL_LOGIN_PATH = "/portal/signin/"
SECOND_FACTOR_PATH = "/accounts/mfa/"
METHODS = ("GET", "POST")
ANONYMOUS = "anonymous"
ACTORS = [ANONYMOUS, *(role.value for role in Role)]


@dataclass(frozen=True)
class World:
    patient: Patient
    tokens: dict[str, str]
    # FHIR API access tokens by role (careloop.fhirapi), and the completed export
    # started by the `FHIR_EXPORT_OWNER` role's client.
    fhir_tokens: dict[str, str]
    export_id: Any


FHIR_EXPORT_OWNER = Role.CARE_COORDINATOR


# URL argument name -> an example value built from the sample world. A route whose
# argument is missing here fails with "add an example for route ...".
SAMPLES: dict[str, Callable[[World], Any]] = {
    "patient_id": lambda world: world.patient.id,
    # The waitlist and EHR conflicts (careloop.scheduling.urls_waitlist).
    "entry_id": lambda world: WaitlistEntry.objects.create(
        patient=world.patient,
        appointment_type=appointment_type(),
        earliest=clock.today(),
        latest=clock.today(),
        channel="staff",
        requested_at=clock.now(),
    ).pk,
    "conflict_id": lambda world: AppointmentConflict.objects.create(
        kind="overlap",
        appointment=add_appointment(world.patient, world.patient.primary_provider, clock.now()),
        other=add_appointment(world.patient, world.patient.primary_provider, clock.now()),
        detected_at=clock.now(),
    ).pk,
    # A fresh record each time: a merge that an allowed role completes consumes it.
    "duplicate_id": lambda world: make_patient(
        "Matrix", "Twin", datetime.date(1970, 1, 1), primary_provider=world.patient.primary_provider
    ).id,
    "path": lambda world: "careloop/app.css",
    # A care-gap worklist (careloop.caregaps.urls): any registered measure id.
    "measure_id": lambda world: "CMS125",
    # Outreach (careloop.outreach.urls_staff, urls_links): a built-in journey and template,
    # and a link code that names nothing (refused alike for everyone).
    "key": lambda world: "no-show-recovery",
    "template": lambda world: "noshow-reschedule",
    "channel": lambda world: "sms",
    "language": lambda world: "en",
    "code": lambda world: "NoSuchCode",
    "kind": lambda world: "npp_ack",
    "contact_id": lambda world: add_contact(world.patient, "phone", "+1 217 555 0199").id,
    "coverage_id": lambda world: add_coverage(
        world.patient, payer_category="commercial", payer_name="Matrix Health"
    ).id,
    "item_id": lambda world: _quarantined().pk,
    "review_id": lambda world: _match_review(world).pk,
    # Intake forms (careloop.intake): a form of the sample patient's, fresh each time (an
    # allowed POST saves it), a completed survey of theirs, and the built-in CSAT survey.
    "assignment_id": lambda world: matrix_assignment(world.patient).pk,
    "response_id": lambda world: matrix_response(world.patient).pk,
    "questionnaire_id": lambda world: matrix_response(world.patient).questionnaire_id,
    # Secure messages (careloop.portal.views_messages, staff_views): a thread of the
    # sample patient's, and a file in one, fresh each time (an allowed POST may close it).
    "thread_id": lambda world: _portal_thread(world).pk,
    "attachment_id": lambda world: ThreadAttachment.objects.get(
        message__thread=_portal_thread(world, with_file=True)
    ).pk,
    # Insurance cards (careloop.portal.views_insurance, staff_insurance): the front of
    # the sample patient's card, fresh each time.
    "card_id": lambda world: _insurance_card(world).pk,
    # A browser's push subscription (careloop.portal.views_push), fresh each time.
    "subscription_id": lambda world: push_subscribe(
        patient=world.patient, subscription=_push_subscription()
    ).pk,
    # The staff calendar (careloop.scheduling.urls): a fresh booking of the sample
    # patient each time, since an allowed role's POST may cancel or move it.
    "appointment_id": lambda world: add_appointment(
        world.patient, world.patient.primary_provider, clock.now()
    ).id,
    "note_id": lambda world: PatientNote.objects.create(
        patient=world.patient,
        author=User.objects.get_or_create(username="matrix-note-author")[0],
        created_at=clock.now(),
        updated_at=clock.now(),
        body="Matrix note",
    ).id,
}
# Examples for one route's argument, by route name, where the argument's meaning depends
# on the route (a FHIR resource id is an id of that route's type).
ROUTE_SAMPLES: dict[tuple[str, str], Callable[[World], Any]] = {
    ("fhir:Patient-read", "resource_id"): lambda world: world.patient.id,
    ("fhir:Appointment-read", "resource_id"): lambda world: add_appointment(
        world.patient, world.patient.primary_provider, clock.now()
    ).id,
    ("fhir:Coverage-read", "resource_id"): lambda world: add_coverage(
        world.patient, payer_category="commercial", payer_name="Matrix Health"
    ).id,
    ("fhir:Consent-read", "resource_id"): lambda world: ConsentRecord.objects.create(
        patient=world.patient,
        kind="treatment",
        status="granted",
        period_start=clock.now(),
        capture_method="verbal",
        captured_at=clock.now(),
        recorded_at=clock.now(),
    ).id,
    # The portal's consent pages (careloop.portal.views_consents): a published document
    # to sign, and a record of the sample patient's to download.
    ("portal:consent_sign", "kind"): lambda world: ConsentDocument.objects.get_or_create(
        kind="telehealth",
        version="matrix",
        defaults={
            "title": "Matrix telehealth",
            "body": "Matrix text",
            "body_sha256": "0" * 64,
            "published_at": clock.now(),
        },
    )[0].kind,
    # A revocable kind (revoking the NPP acknowledgement is refused with a 409).
    ("portal:consent_revoke", "kind"): lambda world: "telehealth",
    ("portal:consent_download", "record_id"): lambda world: ConsentRecord.objects.create(
        patient=world.patient,
        kind="telehealth",
        status="granted",
        period_start=clock.now(),
        capture_method="portal_esign",
        captured_at=clock.now(),
        recorded_at=clock.now(),
    ).id,
    # The portal's video-visit page (careloop.portal.views_appointments) is for telehealth.
    ("portal:appointment_join", "appointment_id"): lambda world: _video_visit(world).id,
    ("fhir:Observation-read", "resource_id"): lambda world: ClinicalFact.objects.create(
        patient=world.patient, kind="observation", system="http://loinc.org", code="4548-4"
    ).id,
    ("fhir:MeasureReport-read", "resource_id"): lambda world: _measure_result(world).pk,
    ("fhir:AuditEvent-read", "resource_id"): lambda world: audit_record(
        action="config.change", actor_kind="system", actor_id="matrix"
    ).id,
    ("fhir:group_export", "group_id"): lambda world: (
        f"location-{world.patient.primary_provider.location_id}"
    ),
    ("fhir:export_status", "job_id"): lambda world: world.export_id,
    ("fhir:export_file", "job_id"): lambda world: world.export_id,
    ("fhir:export_file", "file_name"): lambda world: "Patient.ndjson",
    ("fhir:unknown", "rest"): lambda world: "Medication",
}

# Query strings for routes that answer nothing without parameters (FHIR operations), so
# that the answer is about permission and not about a missing parameter.
ROUTE_QUERIES: dict[str, str] = {
    "fhir:measure_evaluate": "periodStart=2026-01-01&periodEnd=2026-12-31",
    "fhir:measure_care_gaps": "periodStart=2026-01-01&periodEnd=2026-12-31&status=open-gap",
}


def _video_visit(world: World) -> Any:
    from careloop.scheduling.models import AppointmentType

    kind, _ = AppointmentType.objects.get_or_create(
        code="matrix-video", defaults={"name": "Video visit", "minutes": 20, "telehealth": True}
    )
    visit = add_appointment(world.patient, world.patient.primary_provider, clock.now())
    visit.appointment_type = kind
    visit.save(update_fields=["appointment_type"])
    return visit


def _measure_result(world: World) -> PatientMeasureResult:
    run = MeasureRun.objects.create(
        measure="CMS125",
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 12, 31),
        as_of=datetime.date(2026, 12, 31),
        started_at=clock.now(),
    )
    return PatientMeasureResult.objects.create(run=run, patient=world.patient, group=1)


def _portal_thread(world: World, *, with_file: bool = False) -> Thread:
    files = [Upload(name="matrix.txt", content=b"Matrix file")] if with_file else []
    return thread_start(
        account=PortalAccount.objects.get(patient=world.patient),
        inbox="care_team",
        subject="Matrix subject",
        body="Matrix body",
        idempotency_key=uuid.uuid4().hex,
        uploads=files,
    )


def _insurance_card(world: World) -> InsuranceCard:
    account = PortalAccount.objects.get(patient=world.patient)
    return insurance_card_upload(
        user=account.user,
        patient=world.patient,
        uploads={"front": Upload(name="matrix.png", content=MATRIX_PNG)},
        idempotency_key=uuid.uuid4().hex,
    )[0]


MATRIX_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00\x00\x00\x01" * 2 + b"\x08\x02\x00\x00\x00"
)


def _matrix_source() -> Source:
    return Source.objects.get_or_create(name="matrix-ehr", defaults={"created_at": clock.now()})[0]


def _quarantined() -> QuarantineItem:
    return QuarantineItem.objects.create(
        source=_matrix_source(),
        format="fhir-ndjson",
        origin="matrix.ndjson",
        line=1,
        reason="line 1: not JSON",
        payload="{not json",
        created_at=clock.now(),
    )


def _match_review(world: World) -> MatchReview:
    # A fresh pair each time: a merge that an allowed role decides consumes it.
    incoming = make_patient("Matrix", "Incoming", datetime.date(1970, 1, 1))
    return MatchReview.objects.create(
        source=_matrix_source(),
        incoming=incoming,
        candidate=world.patient,
        reason="birth date, family name",
        created_at=clock.now(),
    )


# JSON bodies for API POSTs, by route name: a body that validates, so that the answer
# is about permission and not about the body.
_CONTACT = {"system": "email", "value": "matrix@example.org", "can_email": True}
_COVERAGE = {"payer_category": "self_pay", "payer_name": "Self"}
_NOTE = {"body": "Called about the bill."}
_CONSENT = {"kind": "treatment", "status": "granted", "method": "verbal"}


def _push_subscription() -> dict[str, Any]:
    token = uuid.uuid4().hex
    return {"endpoint": f"https://fcm.googleapis.com/fcm/send/{token}", "keys": Browser().keys()}


# The portal's JSON endpoints (careloop.portal.views_push) get a body they accept.
PORTAL_JSON_BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "portal:push_on": lambda: {"subscription": _push_subscription()},
    "portal:push_off": lambda: {"endpoint": _push_subscription()["endpoint"]},
}
# An endpoint sharing its path with another is walked under each endpoint's name.
API_BODIES: dict[str, dict[str, Any]] = {
    "api:patients_search": {"query": ""},
    "api:patient_create": {
        "given_name": "Matrix",
        "family_name": "Newcomer",
        "birth_date": "1990-02-03",
        "not_a_duplicate_because": "a matrix test registers the same person per role",
    },
    "api:contact_points_index": _CONTACT,
    "api:contact_point_create": _CONTACT,
    "api:coverages_index": _COVERAGE,
    "api:coverage_create": _COVERAGE,
    "api:notes_index": _NOTE,
    "api:note_create": _NOTE,
    "api:consents_index": _CONSENT,
    "api:consent_create": _CONSENT,
}


@dataclass(frozen=True)
class Route:
    pattern: str
    name: str | None
    callback: Callable[..., Any]
    arguments: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.name or self.pattern

    @property
    def page_permission(self) -> Any:
        return getattr(self.callback, "careloop_permission", None)

    @property
    def api_permission(self) -> Any:
        return getattr(self.callback, "careloop_api_permission", None)

    @property
    def fhir_permission(self) -> Any:
        return getattr(self.callback, "careloop_fhir_permission", None)

    @property
    def kind(self) -> str:
        if self.name in PUBLIC_ROUTES:
            return "public"
        portal = getattr(self.callback, "careloop_portal", None)
        if portal is not None:
            return "portal-public" if portal == "public" else "portal"
        if self.name in SIGNED_ROUTES:
            return "signed"
        if getattr(self.callback, "careloop_api_public", False):
            return "api-public"
        if self.api_permission is not None:
            return "api"
        if self.fhir_permission is not None:
            return "fhir"
        if self.page_permission is not None:
            return "page"
        return "undeclared"


def walk(
    patterns: list[Any], prefix: str = "", namespace: str = "", arguments: tuple[str, ...] = ()
) -> Iterator[Route]:
    for entry in patterns:
        names = arguments + tuple(entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), inner, names)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else None
            yield Route(prefix + str(entry.pattern), name, entry.callback, names)


ROUTES = list(walk(get_resolver().url_patterns))
ROUTE_IDS = [route.label for route in ROUTES]


def build_url(route: Route, world: World) -> str:
    assert route.name, f"name route {route.pattern!r} so the matrix can build its URL"
    samples = {a: ROUTE_SAMPLES.get((route.name, a), SAMPLES.get(a)) for a in route.arguments}
    missing = [argument for argument, sample in samples.items() if sample is None]
    assert not missing, (
        f"add an example for route {route.label!r} (argument {missing[0]!r}) to SAMPLES in "
        "tests/security/test_route_matrix.py"
    )
    url = reverse(route.name, kwargs={a: sample(world) for a, sample in samples.items()})
    query = ROUTE_QUERIES.get(route.name, "")
    return f"{url}?{query}" if query else url


def fhir_access(role: Role) -> str:
    """An access token of a FHIR client acting as `role`, with every read scope."""
    client = FhirClient.objects.create(
        name=f"matrix-{role}",
        client_id=f"matrix-{role}",
        jwks={"keys": []},
        scopes=["system/*.read"],
        role=role,
        created_at=clock.now(),
    )
    raw = f"matrix-fhir-{role}"
    AccessToken.objects.create(
        client=client,
        digest=token_digest(raw),
        scopes=client.scopes,
        issued_at=clock.now(),
        expires_at=clock.now() + datetime.timedelta(hours=1),
    )
    return raw


@pytest.fixture
def world(settings: Any, tmp_path: Any) -> World:
    provider = make_provider(make_location())
    patient = make_patient("Matrix", "Sample", datetime.date(1970, 1, 1), primary_provider=provider)
    tokens: dict[str, str] = {}
    fhir_tokens: dict[str, str] = {}
    for role in Role:
        user = staff_user(
            role, f"matrix-{role}", provider=provider if role == Role.CLINICIAN else None
        )
        if is_staff_role(role):  # a patient account gets no API token at all
            tokens[role] = token_create(user=user).raw
        if is_staff_role(role) and role not in SCOPED_ROLES:  # what a FHIR client may act as
            fhir_tokens[role] = fhir_access(role)
        if role == Role.PATIENT:  # the portal's own-record rule needs a record
            PortalAccount.objects.create(user=user, patient=patient, created_at=clock.now())
    settings.FHIR_EXPORT_DIR = tmp_path
    export = ExportJob.objects.create(
        client=FhirClient.objects.get(name=f"matrix-{FHIR_EXPORT_OWNER}"),
        types=["Patient"],
        request_url="https://testserver/fhir/r4/Patient/$export",
        transaction_time=clock.now(),
        created_at=clock.now(),
    )
    export_run(job_id=export.pk)
    return World(patient=patient, tokens=tokens, fhir_tokens=fhir_tokens, export_id=export.pk)


def expectation(
    route: Route, actor: str, method: str = "GET", fhir_actors: frozenset[str] = frozenset()
) -> str:
    """'page' (< 400), 'login' (sent to sign in), 'unauthenticated' (401) or 'refused'."""
    if route.kind == "portal":
        if actor == ANONYMOUS:
            return "portal login"
        return "page" if actor == Role.PATIENT else "refused"
    if route.kind == "fhir":
        if actor not in fhir_actors:
            return "unauthenticated"
        if route.fhir_permission == FHIR_OWNER:
            return "page" if actor == FHIR_EXPORT_OWNER else "refused"
        op, resource = route.fhir_permission
        return "page" if allowed(actor, op, resource) else "refused"
    if route.kind == "api":
        if actor == ANONYMOUS or not is_staff_role(actor):
            return "unauthenticated"
        # Endpoints sharing a path (GET lists, POST adds) each declare their own.
        methods = getattr(route.callback, "careloop_api_methods", {})
        declared = methods.get(method, route.api_permission)
    else:
        if actor == ANONYMOUS:
            return "login"
        declared = route.page_permission
    if declared == ANY_STAFF:
        return "page" if is_staff_role(actor) else "refused"
    op, resource = declared
    return "page" if allowed(actor, op, resource) else "refused"


def outcome(status: int, location: str) -> str:
    if status in (301, 302, 303) and location.startswith(LOGIN_PATH):
        return "login"
    if status in (301, 302, 303) and location.startswith(PORTAL_LOGIN_PATH):
        return "portal login"
    if status in (301, 302, 303) and location.startswith(SECOND_FACTOR_PATH):
        return "second factor"
    if status < 400:
        return "page"
    if status == 401:
        return "unauthenticated"
    if status in (403, 404):
        return "refused"
    return f"status {status}"


def request(route: Route, world: World, url: str, method: str, actor: str) -> tuple[int, str]:
    client = Client()
    headers: dict[str, str] = {}
    if route.kind == "fhir":
        if actor in world.fhir_tokens:
            headers["Authorization"] = f"Bearer {world.fhir_tokens[actor]}"
    elif route.kind.startswith("api"):
        if actor in world.tokens:
            headers["Authorization"] = f"Bearer {world.tokens[actor]}"
    elif actor != ANONYMOUS:
        sign_in(client, User.objects.get(username=f"matrix-{actor}"))
    if method == "GET":
        response = client.get(url, secure=True, headers=headers)
    elif route.kind == "fhir":
        response = client.post(
            url, "", content_type="application/x-www-form-urlencoded", secure=True, headers=headers
        )
    elif route.kind.startswith("api"):
        body = json.dumps(API_BODIES.get(route.label, {}))
        response = client.post(
            url, body, content_type="application/json", secure=True, headers=headers
        )
    elif route.label in PORTAL_JSON_BODIES:
        body = json.dumps(PORTAL_JSON_BODIES[route.label]())
        response = client.post(
            url, body, content_type="application/json", secure=True, headers=headers
        )
    else:
        response = client.post(url, secure=True, headers=headers)
    return response.status_code, response.get("Location", "")


def test_the_resolver_lists_routes_through_includes() -> None:
    names = {route.name for route in ROUTES}
    assert {"home", "login", "patients:list", "patients:detail", "break_glass:open"} <= names


def test_every_public_route_name_exists() -> None:
    # A stale entry would let a future route of that name go undeclared.
    assert {route.name for route in ROUTES} >= PUBLIC_ROUTES | SIGNED_ROUTES


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_route_declares_its_permission_or_is_public(route: Route) -> None:
    assert route.kind != "undeclared", (
        f"route {route.label!r} declares no permission: decorate its view with "
        "careloop.core.web.staff_page(op, resource), or add it to "
        "careloop.security.permissions.PUBLIC_ROUTES if it shows no data at all"
    )
    if route.kind == "public":
        assert route.page_permission is None and route.api_permission is None, (
            f"public route {route.label!r} also declares a permission"
        )
    if route.kind == "signed":
        assert getattr(route.callback, "careloop_signed_webhook", False), (
            f"signed route {route.label!r} must check its signature (outreach.views.signed_webhook)"
        )


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_every_actor_gets_what_the_table_says(route: Route, world: World) -> None:
    if route.kind == "undeclared":
        pytest.fail(f"route {route.label!r} declares no permission (see the test above)")
    url = build_url(route, world)
    wrong: list[str] = []
    for method in METHODS:
        answers = {actor: request(route, world, url, method, actor) for actor in ACTORS}
        statuses = {status for status, _ in answers.values()}
        if route.kind == "signed":
            # Unsigned: refused alike for every caller, signed in or not (GET is 405).
            if statuses not in ({403}, {405}):
                wrong.append(f"{method}: unsigned webhook answered {answers}")
            continue
        if route.kind == "api-public":
            # Nothing behind it: every caller gets the same answer.
            if len(statuses) != 1 or max(statuses) >= 500:
                wrong.append(f"{method}: callers answered differently: {answers}")
            continue
        if 405 in statuses:
            # The method is not accepted: then it is refused to everyone alike, before
            # any permission check (the method decorator goes outside staff_page).
            if statuses != {405}:
                wrong.append(f"{method}: 405 for some actors only: {answers}")
            continue
        for actor, (status, location) in answers.items():
            if route.kind in ("public", "portal-public"):
                # A page or any redirect (signing out sends you to sign in).
                if status >= 400:
                    wrong.append(f"{method} as {actor}: public route answered {status}")
                continue
            expected = expectation(route, actor, method, frozenset(world.fhir_tokens))
            got = outcome(status, location)
            if expected != got:
                wrong.append(f"{method} as {actor}: expected {expected}, got {got} ({status})")
    assert not wrong, f"{route.label} ({url}):\n" + "\n".join(wrong)
