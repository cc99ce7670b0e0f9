"""Terminology (the official value-set expansions) and measure results.

Value sets are keyed by OID: the CQL names them by URL, and the same OID appears under
both `http://` and `https://cts.nlm.nih.gov/...` (careloop.caregaps.terminology).

A measure run is one evaluation of one measure over one measurement period, for the
whole population or for a few patients (an import touched them). Its per-patient rows
hold population membership after the proportion rules, for the patients in the initial
population only: a patient without a row was not in it.
"""

from __future__ import annotations

from django.db import models


class ValueSet(models.Model):
    oid = models.CharField(max_length=100, primary_key=True)
    url = models.CharField(max_length=200)
    version = models.CharField(max_length=40, blank=True)
    name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["oid"]

    def __str__(self) -> str:
        return f"{self.name} ({self.oid})"


class ValueSetCode(models.Model):
    value_set = models.ForeignKey(ValueSet, on_delete=models.CASCADE, related_name="codes")
    system = models.CharField(max_length=100)
    code = models.CharField(max_length=40)
    display = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["value_set", "system", "code"]
        indexes = [
            # A fact's (system, code) looked up in any value set.
            models.Index(fields=["system", "code"], name="vscode_system_code_idx"),
        ]
        constraints = [
            # why: an expansion lists a code once; the loader relies on it to replace sets.
            # Also the (value set, system, code) index the measure queries join on.
            models.UniqueConstraint(
                fields=["value_set", "system", "code"], name="vscode_unique_member"
            ),
        ]


class GapStatus(models.TextChoices):
    """A patient's rolling status for a measure as of the run's date."""

    MET = "met", "Met"
    DUE_SOON = "due_soon", "Due soon"
    OVERDUE = "overdue", "Overdue"
    EXCLUDED = "excluded", "Excluded"
    NOT_APPLICABLE = "not_applicable", "Not applicable"


class MeasureRun(models.Model):
    measure = models.CharField(max_length=16)
    period_start = models.DateField()
    period_end = models.DateField()
    # The date statuses are computed as of, and the due-soon horizon in days.
    as_of = models.DateField(null=True, blank=True)
    horizon_days = models.PositiveSmallIntegerField(default=60)
    # The run an incremental refresh keeps current (the latest whole-population run
    # of a measure and period); see careloop.caregaps.evaluate.caregaps_refresh.
    whole_population = models.BooleanField(default=True)
    # Empty for the whole population; else how many patients this run re-evaluated.
    scoped_patients = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["measure", "period_start", "period_end"], name="run_measure_idx")
        ]


class PatientMeasureResult(models.Model):
    run = models.ForeignKey(MeasureRun, on_delete=models.CASCADE, related_name="results")
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="measure_results"
    )
    group = models.PositiveSmallIntegerField(default=1)
    initial_population = models.BooleanField(default=True)
    denominator = models.BooleanField(default=False)
    denominator_exclusion = models.BooleanField(default=False)
    denominator_exception = models.BooleanField(default=False)
    numerator = models.BooleanField(default=False)
    numerator_exclusion = models.BooleanField(default=False)
    # Bit i set when the patient is in the measure's stratifier i (0-based).
    strata = models.PositiveIntegerField(default=0)
    # The rolling status as of the run's date (GapStatus), the day it falls or fell
    # due (met/due soon: met until; overdue: when it lapsed, empty when never met),
    # and the exclusion reason (hospice, mastectomy...).
    status = models.CharField(max_length=16, choices=GapStatus.choices, default="")
    due_date = models.DateField(null=True, blank=True)
    reason = models.CharField(max_length=24, blank=True, default="")

    class Meta:
        ordering = ["run", "patient", "group"]
        indexes = [
            models.Index(fields=["patient", "run"], name="result_patient_idx"),
            # Worklists and outreach: a run's patients of one status, by due date.
            models.Index(fields=["run", "status", "due_date"], name="result_status_idx"),
        ]
        constraints = [
            # why: one membership per patient and group in a run.
            models.UniqueConstraint(
                fields=["run", "patient", "group"], name="result_unique_membership"
            ),
        ]
