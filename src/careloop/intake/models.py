"""Digital intake forms and surveys: questionnaires, who is asked to fill them, answers.

A `Questionnaire` is a FHIR R4 Questionnaire kept as its JSON (the definition is the
practice's configuration, no PHI). A `FormAssignment` asks one patient to fill one
questionnaire, optionally for one appointment. A `QuestionnaireResponse` holds the
patient's answers as a FHIR QuestionnaireResponse, encrypted (class I: answers are
free text and health facts); only the survey score and the visit's provider and
location sit beside it in plain columns, so that satisfaction figures are computed in
SQL without opening a single answer.
"""

from __future__ import annotations

import uuid

from django.db import models

from careloop.patients.models import Patient
from careloop.scheduling.models import Appointment, Location, Provider
from careloop.security.fields import EncryptedTextField


class QuestionnaireStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class Purpose(models.TextChoices):
    INTAKE = "intake", "Intake"
    PRE_REGISTRATION = "pre_registration", "Pre-registration"
    SURVEY = "survey", "Survey"
    OTHER = "other", "Other"


class ScoreKind(models.TextChoices):
    NONE = "", "No score"
    CSAT = "csat", "Satisfaction (CSAT, 1-5)"
    NPS = "nps", "Net promoter (NPS, 0-10)"


class Questionnaire(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.CharField(max_length=255)
    version = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    status = models.CharField(
        max_length=8, choices=QuestionnaireStatus.choices, default=QuestionnaireStatus.ACTIVE
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.INTAKE)
    # The FHIR R4 Questionnaire resource, validated on import (careloop.intake.definition).
    definition = models.JSONField()
    # Appointment type codes before whose visits this form is required (empty: none).
    required_for_types = models.JSONField(default=list, blank=True)
    # Sent after a visit by the post-visit journey's `{{ link.form }}`.
    post_visit = models.BooleanField(default=False)
    # A survey's score: the kind, and the linkId of the question whose answer code is it.
    score_kind = models.CharField(
        max_length=8, choices=ScoreKind.choices, default=ScoreKind.NONE, blank=True
    )
    score_link_id = models.CharField(max_length=64, blank=True)
    # linkId -> profile field (careloop.intake.profile_mapping.FIELDS), applied on completion.
    mapping = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["title", "url", "version"]
        constraints = [
            # why: a canonical url plus version names one definition, as in FHIR.
            models.UniqueConstraint(
                fields=["url", "version"], name="intake_questionnaire_url_version"
            ),
            models.CheckConstraint(
                condition=models.Q(score_kind="") | ~models.Q(score_link_id=""),
                name="intake_questionnaire_score_has_item",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.version})"


class AssignmentStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"


class FormAssignment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="form_assignments")
    questionnaire = models.ForeignKey(
        Questionnaire, on_delete=models.PROTECT, related_name="assignments"
    )
    appointment = models.ForeignKey(
        Appointment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=12, choices=AssignmentStatus.choices, default=AssignmentStatus.REQUESTED
    )
    due = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["patient", "-created_at"]
        indexes = [models.Index(fields=["patient", "status"], name="intake_assignment_open_idx")]
        constraints = [
            # why: a visit's survey link is created when each message is rendered; the
            # reminders about one visit must lead to the same form, not one form each.
            models.UniqueConstraint(
                fields=["questionnaire", "appointment"],
                condition=models.Q(appointment__isnull=False),
                name="intake_assignment_one_per_visit",
            ),
        ]


class ResponseStatus(models.TextChoices):
    IN_PROGRESS = "in-progress", "In progress"
    COMPLETED = "completed", "Completed"


class QuestionnaireResponse(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # why one-to-one: saving, resuming and submitting all work on the one response of
    # an assignment, so a form submitted twice cannot leave two responses.
    assignment = models.OneToOneField(
        FormAssignment, on_delete=models.CASCADE, related_name="response"
    )
    # A named relation (not "+"), so that a patient merge moves responses with the rest.
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="questionnaire_responses"
    )
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=12, choices=ResponseStatus.choices, default=ResponseStatus.IN_PROGRESS
    )
    authored = models.DateTimeField()
    # The FHIR QuestionnaireResponse JSON (answers, comments): class I.
    answers = EncryptedTextField()
    # The submit form's one-time key: the same submission posted twice finds this row.
    submission_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    # Plain columns for the figures (class II once apart from the comments).
    score_kind = models.CharField(max_length=8, choices=ScoreKind.choices, blank=True)
    score = models.SmallIntegerField(null=True, blank=True)
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["patient", "-authored"]
        indexes = [
            models.Index(fields=["score_kind", "completed_at"], name="intake_response_score_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__isnull=True) | ~models.Q(score_kind=""),
                name="intake_response_score_has_kind",
            ),
        ]
