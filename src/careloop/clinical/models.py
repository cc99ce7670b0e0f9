"""Clinical facts from the EHR, in one narrow table.

One row per coded element of a clinical resource: a condition's code, an observation's
code and each of its components (the two halves of a blood pressure), a request's
reason... Quality measures run as set-based SQL over this table, so its columns are
coded (class II) and indexed for (kind, code) and (patient, kind).

A resource from an EHR is (source_system, resource_type, source_id) and becomes rows
part 0..n; part 0 carries the resource's version, lastUpdated and content hash, which
is how a re-import knows a resource is unchanged (careloop.ehr.ingest). The subject
is kept as the source's own patient id (`subject_ref`) so that a fact can arrive
before its Patient: `patient` stays empty until that Patient is imported.
"""

from __future__ import annotations

from django.db import models


class FactKind(models.TextChoices):
    CONDITION = "condition", "Condition"
    OBSERVATION = "observation", "Observation"
    PROCEDURE = "procedure", "Procedure"
    IMMUNIZATION = "immunization", "Immunization"
    MEDICATION = "medication", "Medication"
    ENCOUNTER = "encounter", "Encounter"
    ALLERGY = "allergy", "Allergy"
    DIAGNOSTIC_REPORT = "report", "Diagnostic report"
    SERVICE_REQUEST = "service_request", "Service request"
    CARE_PLAN = "care_plan", "Care plan"
    DEVICE_REQUEST = "device_request", "Device request"
    CARE_TEAM = "care_team", "Care team"


class CodeSystem(models.TextChoices):
    SNOMED = "http://snomed.info/sct", "SNOMED CT"
    ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm", "ICD-10-CM"
    LOINC = "http://loinc.org", "LOINC"
    CPT = "http://www.ama-assn.org/go/cpt", "CPT"
    HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "HCPCS"
    CVX = "http://hl7.org/fhir/sid/cvx", "CVX"
    RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm", "RxNorm"


class FactElement(models.TextChoices):
    """Which coded element of its resource a row holds."""

    CODE = "code", "Code"
    COMPONENT = "component", "Component"
    REASON = "reason", "Reason"
    TYPE = "type", "Type"
    DISPOSITION = "disposition", "Discharge disposition"
    CLASS = "class", "Class"
    BODY_SITE = "body_site", "Body site"


class ClinicalFact(models.Model):
    patient = models.ForeignKey(
        "patients.Patient",
        on_delete=models.CASCADE,
        related_name="clinical_facts",
        null=True,
        blank=True,
    )
    kind = models.CharField(max_length=16, choices=FactKind.choices)
    system = models.CharField(max_length=100)
    code = models.CharField(max_length=40)
    display = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=24, blank=True)
    category = models.CharField(max_length=40, blank=True)
    effective_start = models.DateTimeField(null=True)
    effective_end = models.DateTimeField(null=True, blank=True)
    value_num = models.FloatField(null=True, blank=True)
    value_code = models.CharField(max_length=40, blank=True)
    unit = models.CharField(max_length=24, blank=True)
    source_system = models.CharField(max_length=100, blank=True)
    source_id = models.CharField(max_length=64, blank=True)
    source_version = models.CharField(max_length=64, blank=True)
    # Identity and change detection of the source resource (see the module docstring).
    resource_type = models.CharField(max_length=32, blank=True, db_default="")
    part = models.PositiveSmallIntegerField(default=0, db_default=0)
    element = models.CharField(
        max_length=12, choices=FactElement.choices, default=FactElement.CODE, db_default="code"
    )
    subject_ref = models.CharField(max_length=64, blank=True, db_default="")
    source_updated = models.DateTimeField(null=True, blank=True)
    content_hash = models.BigIntegerField(null=True, blank=True)
    # When the fact was recorded or ordered (authoredOn, recordedDate, issued), as
    # opposed to when it happened (effective_*): measures ask for both.
    recorded_at = models.DateTimeField(null=True, blank=True)
    # Not done / do not perform: a documented refusal or reason not to, which measures
    # count as exceptions rather than as the act itself.
    negated = models.BooleanField(default=False, db_default=False)
    intent = models.CharField(max_length=16, blank=True, db_default="")
    value_system = models.CharField(max_length=100, blank=True, db_default="")
    # The source's id of the encounter the fact was recorded in (Observation.encounter...).
    encounter_ref = models.CharField(max_length=64, blank=True, db_default="")

    class Meta:
        ordering = ["patient", "effective_start"]
        indexes = [
            models.Index(fields=["patient", "kind"], name="fact_patient_kind_idx"),
            models.Index(fields=["kind", "code"], name="fact_kind_code_idx"),
            # Facts waiting for their Patient to arrive from the same source.
            models.Index(
                fields=["source_system", "subject_ref"],
                name="fact_unresolved_idx",
                condition=models.Q(patient__isnull=True),
            ),
        ]
        constraints = [
            # why: a resource is one set of rows per source; re-imports find it here.
            models.UniqueConstraint(
                fields=["source_system", "resource_type", "source_id", "part"],
                name="fact_source_identity",
                condition=~models.Q(resource_type=""),
            ),
        ]
