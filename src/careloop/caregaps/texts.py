"""The words staff read on a gap card: why a gap is open and what would close it.

Kept here, keyed by measure id (and `ID/group` where a measure's groups differ), rather
than on `Measure`, so a measure file stays a transcription of its specification. A
measure without an entry gets the generic words: a new measure shows up on the
worklist and the cards at once, and reads better once it has its own line here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from careloop.caregaps.models import GapStatus


@dataclass(frozen=True)
class GapText:
    # Why the gap is open (an overdue status), without the date.
    open: str
    # What would close it, in the words a coordinator says on the phone.
    closes: str
    # Why the patient is counted but not measured (CMS138 group 2: not a tobacco user).
    not_applicable: str = "Not applicable: outside the measure's denominator"


GENERIC = GapText(
    open="Not met in the measurement period",
    closes="What the measure's numerator counts (see its specification)",
)

GAP_TEXTS: dict[str, GapText] = {
    "CMS125": GapText(
        open="No screening mammogram in the last 27 months",
        closes="A screening mammogram (every 2 years)",
    ),
    "CMS130": GapText(
        open="No colorectal cancer screening on record within its interval",
        closes=(
            "A colonoscopy (10 years), CT colonography or sigmoidoscopy (5), "
            "FIT-DNA (3) or a yearly FOBT/FIT"
        ),
    ),
    "CMS124": GapText(
        open="No cervical cytology in 3 years (or HPV test in 5)",
        closes="A Pap test (every 3 years) or, from age 30, an HPV test (every 5)",
    ),
    "CMS122": GapText(
        open="Latest HbA1c/GMI above 9%, or none this year",
        closes="An HbA1c or GMI result of 9% or lower this year",
    ),
    "CMS165": GapText(
        open="Latest blood pressure not below 140/90, or none this year",
        closes="A visit with a blood pressure reading below 140/90",
    ),
    "CMS117": GapText(
        open="Childhood immunizations incomplete by the second birthday",
        closes="The missing doses of the childhood series, before the second birthday",
    ),
    "CMS2": GapText(
        open="No depression screening (with follow-up when positive) this year",
        closes="A standardized depression screening and a follow-up plan if positive",
    ),
    "CMS69": GapText(
        open="No BMI recorded (with follow-up when abnormal) this year",
        closes="A documented BMI and, when outside normal, a follow-up plan",
    ),
    "CMS138": GapText(
        open="No tobacco use screening in the last 12 months",
        closes="Ask about tobacco use (every 12 months)",
    ),
    "CMS138/2": GapText(
        open="Tobacco user without cessation counselling or medication",
        closes="Cessation counselling or a cessation medication",
        not_applicable="Not applicable: not a tobacco user",
    ),
    "CMS138/3": GapText(
        open="No tobacco screening, or a user without a cessation intervention",
        closes="Screen for tobacco use and, for a user, a cessation intervention",
    ),
    # Practice-defined gaps (careloop.caregaps.measures): the same engine and statuses.
    "AWV": GapText(
        open="No annual wellness visit in the last 12 months",
        closes="A Medicare annual wellness visit (once every 12 months, 65+)",
    ),
    "DM-EYE": GapText(
        open="No diabetic eye exam in the last 12 months",
        closes="A retinal or dilated eye exam by an eye care professional (yearly)",
    ),
    "DM-KIDNEY": GapText(
        open="No kidney health evaluation (eGFR and uACR) in the last 12 months",
        closes="An eGFR and a urine albumin-creatinine ratio (yearly)",
    ),
    "FLU": GapText(
        open="No influenza vaccine this season",
        closes="A flu shot (once per season, from August)",
    ),
}

# Exclusion reason codes (careloop.caregaps.measure.Group.exclusion_reasons) in words.
REASONS: dict[str, str] = {
    "hospice": "hospice care",
    "palliative": "palliative care",
    "frailty": "advanced illness and frailty",
    "nursing_home": "long-term nursing home resident",
    "mastectomy": "bilateral mastectomy",
    "hysterectomy": "hysterectomy with no residual cervix",
    "colectomy": "total colectomy",
    "colorectal_cancer": "colorectal cancer",
    "bipolar": "bipolar disorder",
    "pregnancy": "pregnancy",
    "pregnancy_or_renal": "pregnancy or kidney disease",
    "end_stage_renal_disease": "end-stage renal disease",
    "other": "a documented exclusion or exception",
}


def gap_text(measure_id: str, group: int = 1) -> GapText:
    return GAP_TEXTS.get(f"{measure_id}/{group}") or GAP_TEXTS.get(measure_id) or GENERIC


def reason_label(reason: str) -> str:
    return REASONS.get(reason, reason.replace("_", " ")) if reason else ""


def gap_why(
    *, measure_id: str, group: int, status: str, due_date: datetime.date | None, reason: str
) -> str:
    """One line: why the patient has this status ("No screening mammogram ...; lapsed on
    2026-01-02", "Excluded: hospice care", "Done; met until 2027-07-02")."""
    text = gap_text(measure_id, group)
    due = due_date.isoformat() if due_date else ""
    if status == GapStatus.OVERDUE:
        return f"{text.open}; lapsed on {due}" if due else text.open
    if status == GapStatus.DUE_SOON:
        return f"Done, but due again by {due}" if due else "Done, due again soon"
    if status == GapStatus.MET:
        return f"Done; met until {due}" if due else "Done for the measurement period"
    if status == GapStatus.EXCLUDED:
        return f"Excluded: {reason_label(reason or 'other')}"
    return text.not_applicable
