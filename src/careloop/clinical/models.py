"""Clinical facts from the EHR, in one narrow table.

One row per coded fact: a condition, an observation, a procedure, an immunization, a
medication, an encounter... Quality measures run as set-based SQL over this table, so
its columns are coded (class II) and indexed for (kind, code) and (patient, kind).
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


class CodeSystem(models.TextChoices):
    SNOMED = "http://snomed.info/sct", "SNOMED CT"
    ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm", "ICD-10-CM"
    LOINC = "http://loinc.org", "LOINC"
    CPT = "http://www.ama-assn.org/go/cpt", "CPT"
    HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "HCPCS"
    CVX = "http://hl7.org/fhir/sid/cvx", "CVX"
    RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm", "RxNorm"


class ClinicalFact(models.Model):
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="clinical_facts"
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
    source_version = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["patient", "effective_start"]
        indexes = [
            models.Index(fields=["patient", "kind"], name="fact_patient_kind_idx"),
            models.Index(fields=["kind", "code"], name="fact_kind_code_idx"),
        ]
