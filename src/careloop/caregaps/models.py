"""Terminology (the official value-set expansions) and measure results.

Value sets are keyed by OID: the CQL names them by URL, and the same OID appears under
both `http://` and `https://cts.nlm.nih.gov/...` (careloop.caregaps.terminology).

A measure run is one evaluation of one measure over one measurement period, for the
whole population or for a few patients (an import touched them). Its per-patient rows
hold population membership after the proportion rules, for the patients in the initial
population only: a patient without a row was not in it.
"""

from __future__ import annotations

import uuid

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
    # No index of their own: (run, patient, group) and (patient, run) below lead with
    # them, and a run writes a row per patient (every index is paid per row).
    run = models.ForeignKey(
        MeasureRun, on_delete=models.CASCADE, related_name="results", db_index=False
    )
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="measure_results", db_index=False
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

    @classmethod
    def merge_rows(cls, *, survivor: models.Model, duplicate: models.Model) -> int:
        """A merged-away record's results are dropped, not moved: they are derived, and
        the survivor is evaluated again with the facts it now holds."""
        deleted, _ = cls.objects.filter(patient=duplicate).delete()
        return deleted


class GapState(models.TextChoices):
    """Where a care gap is in its lifecycle (careloop.caregaps.gaps)."""

    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"
    EXCLUDED = "excluded", "Excluded"


class GapResolution(models.TextChoices):
    """Why a closed gap closed: the patient met the measure, or it stopped applying
    (left the initial population or the denominator: aged out, diagnosis resolved,
    record merged away)."""

    MET = "met", "Met"
    NOT_APPLICABLE = "not_applicable", "No longer applicable"


class CareGap(models.Model):
    """One care gap of one patient for one measure group, from opening to closing.

    A gap opens when an evaluation finds the patient `overdue` (careloop.caregaps.gaps:
    `due_soon` is a prospective gap, read from the results, not a row) and closes when
    a later evaluation finds the patient met, excluded, or out of the measure. Opening
    and closing are set-based statements after each whole-population run and after
    each refresh of the patients an import touched.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="care_gaps"
    )
    measure = models.CharField(max_length=16)
    group = models.PositiveSmallIntegerField(default=1)
    state = models.CharField(max_length=8, choices=GapState.choices, default=GapState.OPEN)
    opened_at = models.DateTimeField()
    opened_run = models.ForeignKey(
        MeasureRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The day the measure lapsed, as the opening run saw it (empty: never met).
    due_date = models.DateField(null=True, blank=True)
    # When the gap left the open state (closed or excluded), and by which run.
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_run = models.ForeignKey(
        MeasureRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=16, choices=GapResolution.choices, blank=True)
    # Why it was excluded (hospice, mastectomy...: PatientMeasureResult.reason).
    reason = models.CharField(max_length=24, blank=True)
    # The latest of the measure's closing facts when it closed as met (the imported
    # mammogram); empty without one, or when the source later withdrew the fact.
    closing_fact = models.ForeignKey(
        "clinical.ClinicalFact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The outreach message the closing is attributed to: the latest one sent to the
    # patient within CAREGAP_ATTRIBUTION_DAYS before the closing event, preferring a
    # message linked to this gap (CareGapMessage) over other care reminders.
    attributed_message = models.ForeignKey(
        "outreach.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The synchronisation that last opened, closed or excluded the gap: its later
    # set-based steps (closing fact, attribution, timeline) find their rows by it.
    sync = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-opened_at", "id"]
        indexes = [
            models.Index(fields=["patient", "measure"], name="caregap_patient_idx"),
            # The closure-rate KPI: gaps of a measure opened / closed in a period.
            models.Index(fields=["measure", "opened_at"], name="caregap_opened_idx"),
            models.Index(fields=["measure", "closed_at"], name="caregap_closed_idx"),
        ]
        constraints = [
            # why: a re-evaluation (or a refresh racing a whole-population run) must
            # find and keep the patient's open gap, never open a second one; the
            # opening INSERT relies on it as its last line of defence.
            models.UniqueConstraint(
                fields=["patient", "measure", "group"],
                condition=models.Q(state="open"),
                name="caregap_one_open",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=GapState.values), name="caregap_state_known"
            ),
            # why: an open gap has no end; a closed or excluded one says when it ended.
            models.CheckConstraint(
                condition=(models.Q(state="open") & models.Q(closed_at__isnull=True))
                | (~models.Q(state="open") & models.Q(closed_at__isnull=False)),
                name="caregap_closed_has_time",
            ),
            # why: "closed" says how (met or not applicable); the others say nothing.
            models.CheckConstraint(
                condition=(models.Q(state="closed") & ~models.Q(resolution=""))
                | (~models.Q(state="closed") & models.Q(resolution="")),
                name="caregap_closed_has_resolution",
            ),
        ]

    @classmethod
    def merge_rows(cls, *, survivor: models.Model, duplicate: models.Model) -> int:
        """A merged-away record's gap history moves to the survivor; its open gaps where
        the survivor has one open for the same measure and group close as no longer
        applicable first (one open gap per patient, measure and group)."""
        from careloop.core.clock import now

        survivor_open = cls.objects.filter(patient=survivor, state=GapState.OPEN)
        cls.objects.filter(patient=duplicate, state=GapState.OPEN).filter(
            models.Exists(
                survivor_open.filter(
                    measure=models.OuterRef("measure"), group=models.OuterRef("group")
                )
            )
        ).update(state=GapState.CLOSED, closed_at=now(), resolution=GapResolution.NOT_APPLICABLE)
        return cls.objects.filter(patient=duplicate).update(patient=survivor)


class CareGapMessage(models.Model):
    """An outreach attempt made for a gap: the message that asked the patient to close
    it. Outreach links them when it sends for a gap (careloop.caregaps.gaps.
    care_gap_link_message); attribution prefers a linked message."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    care_gap = models.ForeignKey(CareGap, on_delete=models.CASCADE, related_name="attempts")
    message = models.ForeignKey(
        "outreach.Message", on_delete=models.CASCADE, related_name="care_gap_links"
    )
    linked_at = models.DateTimeField()

    class Meta:
        ordering = ["care_gap", "linked_at"]
        indexes = [models.Index(fields=["message"], name="caregapmsg_message_idx")]
        constraints = [
            # why: a message is an attempt on a gap once, however often outreach links it.
            models.UniqueConstraint(fields=["care_gap", "message"], name="caregapmsg_unique"),
        ]
