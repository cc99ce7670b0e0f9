"""Writes of the intake app: questionnaires (import, editor, settings), assignments,
and responses (save for later, submit), each audited in its own transaction."""

from __future__ import annotations

import datetime
import json
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.urls import reverse

from careloop.core.clock import now
from careloop.core.errors import NotFound
from careloop.intake.answers import (
    Answers,
    answers_kept,
    required_errors,
    response_items,
)
from careloop.intake.builtin import BUILTIN
from careloop.intake.definition import (
    Parsed,
    QuestionnaireInvalid,
    questionnaire_from_dict,
    walk,
)
from careloop.intake.models import (
    AssignmentStatus,
    FormAssignment,
    Purpose,
    Questionnaire,
    QuestionnaireResponse,
    QuestionnaireStatus,
    ResponseStatus,
    ScoreKind,
)
from careloop.intake.profile_mapping import FIELDS, profile_mapping_apply
from careloop.patients.models import Patient
from careloop.scheduling.models import Appointment
from careloop.security.audit import audit_record
from careloop.security.console import ConsoleActor
from careloop.security.models import User

Author = User | ConsoleActor | None


class FormIncomplete(ValueError):
    """Required answers are missing; `errors` maps linkId to the message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(f"{len(errors)} required answers missing")
        self.errors = errors


class FormClosed(ValueError):
    """The form was already submitted (by another submission)."""


def _audit_questionnaire(actor: Author, questionnaire: Questionnaire, fields: list[str]) -> None:
    audit_record(
        action="intake.questionnaire_save",
        actor=actor,
        actor_kind=None if actor is not None else "system",
        actor_id="" if actor is not None else "intake",
        resource_type="Questionnaire",
        resource_id=str(questionnaire.pk),
        fields=fields,
    )


@transaction.atomic
def questionnaire_import(
    *, actor: Author, parsed: Parsed, purpose: str = Purpose.INTAKE
) -> Questionnaire:
    """Store a parsed Questionnaire; `QuestionnaireInvalid` when its url and version exist."""
    if Questionnaire.objects.filter(url=parsed.url, version=parsed.version).exists():
        raise QuestionnaireInvalid(
            [f"{parsed.url} version {parsed.version} is already imported: give it a new version"]
        )
    at = now()
    questionnaire = Questionnaire.objects.create(
        url=parsed.url,
        version=parsed.version,
        title=parsed.title[:200],
        status=parsed.status if parsed.status in QuestionnaireStatus.values else "draft",
        purpose=purpose if purpose in Purpose.values else Purpose.OTHER,
        definition=parsed.resource,
        created_at=at,
        updated_at=at,
    )
    _audit_questionnaire(actor, questionnaire, ["definition"])
    return questionnaire


@transaction.atomic
def questionnaire_definition_set(
    *, actor: Author, questionnaire: Questionnaire, parsed: Parsed
) -> Questionnaire:
    """Replace the definition (the editor's save). Answers already given keep their
    own copy of each question's text in their QuestionnaireResponse."""
    locked = Questionnaire.objects.select_for_update().get(pk=questionnaire.pk)
    locked.definition = parsed.resource
    locked.title = parsed.title[:200]
    locked.status = parsed.status if parsed.status in QuestionnaireStatus.values else "draft"
    # A mapping or score naming a question that is gone would silently do nothing.
    ids = {i.link_id for i in walk(parsed.items)}
    locked.mapping = {k: v for k, v in locked.mapping.items() if k in ids}
    if locked.score_link_id and locked.score_link_id not in ids:
        locked.score_kind, locked.score_link_id = ScoreKind.NONE, ""
    locked.updated_at = now()
    locked.save()
    _audit_questionnaire(actor, locked, ["definition"])
    return locked


@dataclass(frozen=True)
class Settings:
    purpose: str
    status: str
    required_for_types: list[str]
    post_visit: bool
    score_kind: str
    score_link_id: str
    mapping: dict[str, str]


def questionnaire_settings_errors(questionnaire: Questionnaire, settings: Settings) -> list[str]:
    items = {i.link_id: i for i in walk(questionnaire_items(questionnaire))}
    errors = []
    for link_id, target in settings.mapping.items():
        if link_id not in items or not items[link_id].is_question:
            errors.append(f"mapping: {link_id!r} is not a question of this form")
        if target not in FIELDS:
            errors.append(f"mapping: {target!r} is not a profile field careloop fills from forms")
    if settings.score_kind:
        scored = items.get(settings.score_link_id)
        if scored is None or scored.type not in ("choice", "integer"):
            errors.append("score: name a choice or integer question for the score")
    if settings.purpose not in Purpose.values:
        errors.append("purpose: choose one of the purposes")
    if settings.status not in QuestionnaireStatus.values:
        errors.append("status: choose draft, active or retired")
    if settings.score_kind not in ScoreKind.values:
        errors.append("score: unknown kind")
    return errors


@transaction.atomic
def questionnaire_settings_set(
    *, actor: Author, questionnaire: Questionnaire, settings: Settings
) -> Questionnaire:
    errors = questionnaire_settings_errors(questionnaire, settings)
    if errors:
        raise QuestionnaireInvalid(errors)
    locked = Questionnaire.objects.select_for_update().get(pk=questionnaire.pk)
    locked.purpose = settings.purpose
    locked.status = settings.status
    locked.required_for_types = sorted(set(settings.required_for_types))
    locked.post_visit = settings.post_visit
    locked.score_kind = settings.score_kind
    locked.score_link_id = settings.score_link_id if settings.score_kind else ""
    locked.mapping = dict(settings.mapping)
    locked.updated_at = now()
    locked.save()
    _audit_questionnaire(actor, locked, ["settings", "mapping"])
    return locked


def questionnaire_items(questionnaire: Questionnaire) -> Any:
    return questionnaire_from_dict(questionnaire.definition).items


def builtin_install() -> list[Questionnaire]:
    """The shipped surveys, created on first use (idempotent); one installed before
    careloop shipped its texts in other languages gets them (`_builtin_texts_update`)."""
    found = []
    for definition, kind, link_id, post_visit in BUILTIN:
        existing = Questionnaire.objects.filter(
            url=definition["url"], version=definition["version"]
        ).first()
        if existing is not None and existing.definition != definition:
            existing = _builtin_texts_update(existing, definition)
        if existing is None:
            try:
                with transaction.atomic():
                    existing = questionnaire_import(
                        actor=None,
                        parsed=questionnaire_from_dict(definition),
                        purpose=Purpose.SURVEY,
                    )
                    existing.score_kind, existing.score_link_id = kind, link_id
                    existing.post_visit = post_visit
                    existing.save(update_fields=["score_kind", "score_link_id", "post_visit"])
            except (IntegrityError, QuestionnaireInvalid):  # installed by a concurrent caller
                existing = Questionnaire.objects.get(
                    url=definition["url"], version=definition["version"]
                )
        found.append(existing)
    return found


def _without_primitive_extensions(value: Any) -> Any:
    """The JSON without its `_<name>` elements, where the translations sit."""
    if isinstance(value, dict):
        return {
            key: _without_primitive_extensions(inner)
            for key, inner in value.items()
            if not key.startswith("_")
        }
    if isinstance(value, list):
        return [_without_primitive_extensions(inner) for inner in value]
    return value


def _builtin_texts_update(
    questionnaire: Questionnaire, definition: dict[str, Any]
) -> Questionnaire:
    """Give a stored built-in survey the shipped definition when only the texts in
    other languages differ (the same questions, codes and linkIds, so answers, score and
    settings mean what they meant). Anything else is left as it is."""
    if _without_primitive_extensions(questionnaire.definition) != _without_primitive_extensions(
        definition
    ):
        return questionnaire
    with transaction.atomic():
        locked = Questionnaire.objects.select_for_update().get(pk=questionnaire.pk)
        if locked.definition == definition:  # a concurrent caller did it
            return locked
        locked.definition = definition
        # `updated_at` stays: it picks the practice's newest post-visit survey
        # (survey_link), and this is careloop's upgrade, not the practice's edit.
        locked.save(update_fields=["definition"])
        _audit_questionnaire(None, locked, ["definition"])
    return locked


# --- assignments -------------------------------------------------------------------------


def assignment_create(
    *,
    questionnaire: Questionnaire,
    patient: Patient,
    appointment: Appointment | None = None,
    due: datetime.date | None = None,
) -> FormAssignment:
    """Ask the patient to fill the form; for a visit, the one assignment of that visit."""
    if appointment is not None:
        existing = FormAssignment.objects.filter(
            questionnaire=questionnaire, appointment=appointment
        ).first()
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            return FormAssignment.objects.create(
                patient=patient,
                questionnaire=questionnaire,
                appointment=appointment,
                due=due,
                created_at=now(),
            )
    except IntegrityError:  # the same visit's assignment, made at the same moment
        return FormAssignment.objects.get(questionnaire=questionnaire, appointment=appointment)


def _required_questionnaires() -> list[Questionnaire]:
    return [
        q
        for q in Questionnaire.objects.filter(status=QuestionnaireStatus.ACTIVE)
        if q.required_for_types
    ]


def _visit_forms(visit: Appointment, required: list[Questionnaire]) -> int:
    """Assign `visit` the forms its type requires, due the visit's local day; a form
    asked for the visit it was rescheduled from moves to it (with any saved answers)
    rather than being asked twice. The number of forms newly asked for."""
    day = visit.start.astimezone(zoneinfo.ZoneInfo(visit.location.time_zone)).date()
    made = 0
    for questionnaire in required:
        if visit.appointment_type_id not in questionnaire.required_for_types:
            continue
        if FormAssignment.objects.filter(questionnaire=questionnaire, appointment=visit).exists():
            continue
        moved = 0
        if visit.rescheduled_from_id is not None:
            try:
                with transaction.atomic():
                    moved = FormAssignment.objects.filter(
                        questionnaire=questionnaire, appointment_id=visit.rescheduled_from_id
                    ).update(appointment=visit, due=day)
            except IntegrityError:  # the new visit's form, made at the same moment
                continue
        if not moved:
            assignment_create(
                questionnaire=questionnaire, patient=visit.patient, appointment=visit, due=day
            )
            made += 1
    return made


def required_forms_ensure(*, patient: Patient) -> int:
    """Assign the forms required before the patient's upcoming visits (each form once
    per visit, due the day of the visit); the number of assignments made."""
    from careloop.scheduling.models import HOLDING_STATUSES

    required = _required_questionnaires()
    if not required:
        return 0
    visits = Appointment.objects.filter(
        patient=patient, status__in=HOLDING_STATUSES, start__gte=now()
    ).select_related("location", "patient")
    return sum(_visit_forms(visit, required) for visit in visits)


def visit_forms_assign(*, appointment_id: uuid.UUID) -> int:
    """Assign the forms a just-booked visit requires (careloop.scheduling.booking calls
    this once the booking is committed); nothing for a visit no longer upcoming. The
    portal's home and forms pages ask again (`required_forms_ensure`), so a booking
    whose call failed still gets its forms."""
    from careloop.scheduling.models import HOLDING_STATUSES

    visit = (
        Appointment.objects.filter(pk=appointment_id, status__in=HOLDING_STATUSES, start__gte=now())
        .select_related("location", "patient")
        .first()
    )
    required = _required_questionnaires()
    if visit is None or not required:
        return 0
    return _visit_forms(visit, required)


def survey_link(*, appointment: Appointment) -> str | None:
    """The portal URL of the post-visit survey for `appointment` (its assignment made
    on first use), or None when the practice has no post-visit survey active."""
    from careloop.outreach.links import portal_url

    builtin_install()
    survey = (
        Questionnaire.objects.filter(
            purpose=Purpose.SURVEY, post_visit=True, status=QuestionnaireStatus.ACTIVE
        )
        .order_by("-updated_at")
        .first()
    )
    if survey is None:
        return None
    assignment = assignment_create(
        questionnaire=survey, patient=appointment.patient, appointment=appointment
    )
    return portal_url(reverse("intake_portal:form", args=[assignment.pk]).removeprefix("/portal/"))


# --- responses ---------------------------------------------------------------------------


def _score(questionnaire: Questionnaire, answers: Answers) -> int | None:
    values = answers.get(questionnaire.score_link_id) if questionnaire.score_kind else None
    if not values:
        return None
    first = values[0]
    text = first[1] if isinstance(first, tuple) else first
    try:
        return int(str(text))
    except ValueError:
        return None


def _resource(
    response: QuestionnaireResponse, questionnaire: Questionnaire, answers: Answers
) -> str:
    from careloop.intake.fhir import response_resource

    items = questionnaire_items(questionnaire)
    return json.dumps(
        response_resource(
            response_id=response.pk,
            questionnaire=questionnaire,
            patient_id=response.patient_id,
            status=response.status,
            authored=response.authored,
            items=response_items(items, answers),
        ),
        separators=(",", ":"),
    )


@transaction.atomic
def response_record(
    *,
    user: User,
    assignment_id: uuid.UUID,
    patient: Patient,
    answers: Answers,
    complete: bool,
    submission_key: str = "",
) -> QuestionnaireResponse:
    """Save the patient's answers (for later, or as completed).

    Answers to items hidden by enableWhen are dropped. Completing checks required
    answers (`FormIncomplete`, nothing written), records the score and the visit's
    provider and location beside the encrypted answers, and copies mapped answers
    onto the profile. A submission posted twice (`submission_key`) returns the first
    one's response; any other write to a completed form is `FormClosed`.
    """
    if complete and submission_key:
        earlier = QuestionnaireResponse.objects.filter(
            submission_key=submission_key, patient=patient
        ).first()
        if earlier is not None:
            return earlier
    try:
        # Only the assignment row is locked (an outer join to the visit cannot be).
        assignment = FormAssignment.objects.select_for_update().get(
            pk=assignment_id, patient=patient
        )
    except FormAssignment.DoesNotExist:
        raise NotFound from None
    if assignment.status == AssignmentStatus.COMPLETED:
        raise FormClosed("this form was already submitted")
    questionnaire = assignment.questionnaire
    items = questionnaire_items(questionnaire)
    kept = answers_kept(items, answers)
    if complete:
        missing = required_errors(items, kept)
        if missing:
            raise FormIncomplete(missing)
    at = now()
    response = QuestionnaireResponse.objects.filter(assignment=assignment).first()
    if response is None:
        response = QuestionnaireResponse(
            assignment=assignment, patient=patient, questionnaire=questionnaire, authored=at
        )
    response.status = ResponseStatus.COMPLETED if complete else ResponseStatus.IN_PROGRESS
    response.authored = at
    if complete:
        response.submission_key = submission_key or None
        response.completed_at = at
        response.score_kind = questionnaire.score_kind
        response.score = _score(questionnaire, kept)
        if assignment.appointment is not None:
            response.provider_id = assignment.appointment.provider_id
            response.location_id = assignment.appointment.location_id
    response.answers = _resource(response, questionnaire, kept)
    response.save()
    assignment.status = AssignmentStatus.COMPLETED if complete else AssignmentStatus.IN_PROGRESS
    assignment.completed_at = at if complete else None
    assignment.save(update_fields=["status", "completed_at"])
    audit_record(
        action="intake.form_submit" if complete else "intake.form_save",
        actor=user,
        patient_id=patient.pk,
        resource_type="QuestionnaireResponse",
        resource_id=str(response.pk),
        fields=["answers"],
    )
    if complete and questionnaire.mapping:
        profile_mapping_apply(
            user=user,
            patient=patient,
            mapping=questionnaire.mapping,
            answers=kept,
            response_id=str(response.pk),
        )
    return response
