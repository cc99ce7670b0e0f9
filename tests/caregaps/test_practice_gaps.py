"""The practice-defined gaps (AWV, DM-EYE, DM-KIDNEY, FLU): met, due soon, overdue,
excluded and out of the measure, at their boundary days, for patients imported through
the real FHIR ingest. Period 2026, statuses as of 2026-12-31 (60-day horizon: met
until before 2027-03-01 is due soon)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from careloop.caregaps.evaluate import Period, measure_evaluate
from careloop.caregaps.measure import measure_get, measures
from careloop.caregaps.models import MeasureRun, PatientMeasureResult, ValueSet, ValueSetCode
from careloop.caregaps.valuesets_local import CARELOOP_OID_ROOT
from tests.caregaps.fhir_resources import (
    CPT,
    DIABETES,
    HCPCS,
    HOSPICE_ENCOUNTER,
    ICD10,
    LOINC,
    SNOMED,
    VSAC_HCPCS,
    condition,
    encounter,
    immunization,
    import_resources,
    observation,
    patient,
    patient_ids,
    procedure,
)

pytestmark = pytest.mark.django_db

PERIOD = Period.year(2026)
AS_OF = datetime.date(2026, 12, 31)
D = datetime.date
Status = tuple[str, datetime.date | None, str]


def _evaluate(measure_id: str, **options: Any) -> MeasureRun:
    return measure_evaluate(measure=measure_id, period=PERIOD, as_of=AS_OF, **options)


def _statuses(run: MeasureRun) -> dict[str, Status]:
    names = {v: k for k, v in patient_ids().items()}
    return {
        names[r.patient_id]: (r.status, r.due_date, r.reason)
        for r in PatientMeasureResult.objects.filter(run=run, group=1)
    }


def _seen(pid: str, day: str = "2026-03-02") -> dict[str, Any]:
    """An office visit: the patient is in the practice's care."""
    return encounter(pid, f"visit-{pid}", day)


def test_the_registry_lists_cms_measures_by_number_then_the_practice_gaps() -> None:
    ids = list(measures())

    assert ids[:3] == ["CMS2", "CMS69", "CMS117"]
    assert ids[-4:] == ["AWV", "DM-EYE", "DM-KIDNEY", "FLU"]
    assert measure_get("dm-eye").id == "DM-EYE"
    for measure_id in ids[-4:]:
        measure = measure_get(measure_id)
        assert measure.title and measure.closing
        assert measure.groups[0].exclusion_reasons[0][0] == "hospice"


def test_awv_is_met_for_twelve_months_after_the_wellness_visit(tmp_path: Path) -> None:
    awv, awv_vsac = (HCPCS, "G0439"), (VSAC_HCPCS, "G0438")
    resources = []
    for pid, born in [
        ("met", "1950-02-01"),
        ("soon", "1950-02-01"),
        ("first-day", "1950-02-01"),
        ("day-before", "1950-02-01"),
        ("never", "1950-02-01"),
        ("hospice", "1950-02-01"),
        ("billed", "1950-02-01"),
        ("turns-65", "1961-12-31"),
        ("is-64", "1962-01-01"),
    ]:
        resources += [patient(pid, born), _seen(pid)]
    resources += [
        encounter("met", "a1", "2026-06-01", awv),
        encounter("soon", "a2", "2026-01-15", awv),
        encounter("first-day", "a3", "2025-12-31", awv),
        encounter("day-before", "a4", "2025-12-30", awv),
        encounter("hospice", "a5", "2026-09-01", HOSPICE_ENCOUNTER),
        procedure("billed", "a6", "2026-05-20", awv_vsac),
        encounter("turns-65", "a7", "2026-01-10", awv),
        patient("not-seen", "1950-02-01"),
    ]
    import_resources(tmp_path / "awv", resources)

    statuses = _statuses(_evaluate("AWV"))

    assert statuses["met"] == ("met", D(2027, 6, 1), "")
    assert statuses["soon"] == ("due_soon", D(2027, 1, 15), "")
    # The visit on the first day of the 12 months keeps it met to the period's end.
    assert statuses["first-day"] == ("due_soon", D(2026, 12, 31), "")
    assert statuses["day-before"] == ("overdue", D(2026, 12, 30), "")
    assert statuses["never"] == ("overdue", None, "")
    assert statuses["hospice"] == ("excluded", None, "hospice")
    # A billed visit, coded under the VSAC spelling of HCPCS.
    assert statuses["billed"] == ("met", D(2027, 5, 20), "")
    assert statuses["turns-65"] == ("due_soon", D(2027, 1, 10), "")
    # Not applicable: 64 at the period's end, or not seen in two years.
    assert "is-64" not in statuses
    assert "not-seen" not in statuses


def test_dm_eye_needs_a_retinal_or_dilated_exam_every_year(tmp_path: Path) -> None:
    resources = []
    for pid, born in [
        ("photo", "1970-01-01"),
        ("macula", "1970-01-01"),
        ("eye-visit", "1970-01-01"),
        ("lapsed", "1970-01-01"),
        ("never", "1970-01-01"),
        ("hospice", "1970-01-01"),
        ("no-diabetes", "1970-01-01"),
        ("is-76", "1950-06-01"),
    ]:
        resources += [patient(pid, born), _seen(pid)]
        if pid != "no-diabetes":
            code = (ICD10, "E11.9") if pid == "macula" else DIABETES
            resources.append(condition(pid, f"dm-{pid}", code, "2020-01-01"))
    resources += [
        procedure("photo", "e1", "2026-05-01", (CPT, "92250")),
        observation("macula", "e2", "2026-01-20", (LOINC, "32451-7"), category="exam"),
        encounter("eye-visit", "e3", "2025-12-31", (CPT, "92014")),
        procedure("lapsed", "e4", "2025-12-30", (SNOMED, "722161008")),
        encounter("hospice", "e5", "2026-09-01", HOSPICE_ENCOUNTER),
        procedure("no-diabetes", "e6", "2026-05-01", (CPT, "92250")),
    ]
    import_resources(tmp_path / "eye", resources)

    statuses = _statuses(_evaluate("DM-EYE"))

    assert statuses["photo"] == ("met", D(2027, 5, 1), "")
    assert statuses["macula"] == ("due_soon", D(2027, 1, 20), "")
    assert statuses["eye-visit"] == ("due_soon", D(2026, 12, 31), "")
    assert statuses["lapsed"] == ("overdue", D(2026, 12, 30), "")
    assert statuses["never"] == ("overdue", None, "")
    assert statuses["hospice"] == ("excluded", None, "hospice")
    assert "no-diabetes" not in statuses
    assert "is-76" not in statuses


def test_dm_kidney_needs_both_tests_and_lapses_with_the_earlier(tmp_path: Path) -> None:
    egfr, uacr = (LOINC, "98979-8"), (LOINC, "9318-7")
    resources = []
    for pid in ["both", "egfr-first", "first-day", "egfr-only", "esrd", "no-diabetes"]:
        resources += [patient(pid, "1960-01-01"), _seen(pid)]
        if pid != "no-diabetes":
            resources.append(condition(pid, f"dm-{pid}", DIABETES, "2018-01-01"))
    resources += [
        observation("both", "k1", "2026-06-01", egfr),
        observation("both", "k2", "2026-07-01", uacr),
        observation("egfr-first", "k3", "2026-01-10", egfr),
        observation("egfr-first", "k4", "2026-09-01", (LOINC, "14959-1")),
        observation("first-day", "k5", "2025-12-31", (LOINC, "33914-3")),
        observation("first-day", "k6", "2026-03-01", uacr),
        observation("egfr-only", "k7", "2026-05-01", egfr),
        condition("esrd", "k8", (ICD10, "N18.6"), "2025-06-01"),
    ]
    import_resources(tmp_path / "kidney", resources)

    statuses = _statuses(_evaluate("DM-KIDNEY"))

    # Met until the earlier test lapses.
    assert statuses["both"] == ("met", D(2027, 6, 1), "")
    assert statuses["egfr-first"] == ("due_soon", D(2027, 1, 10), "")
    assert statuses["first-day"] == ("due_soon", D(2026, 12, 31), "")
    assert statuses["egfr-only"] == ("overdue", None, "")
    assert statuses["esrd"] == ("excluded", None, "ckd5_esrd")
    assert "no-diabetes" not in statuses


def test_flu_is_met_until_the_end_of_the_season_of_the_dose(tmp_path: Path) -> None:
    resources = []
    for pid, born in [
        ("october", "1980-01-01"),
        ("august-1", "1980-01-01"),
        ("july-31", "1980-01-01"),
        ("last-season", "1980-01-01"),
        ("not-done", "1980-01-01"),
        ("never", "1980-01-01"),
        ("hospice", "1980-01-01"),
        ("is-17", "2009-06-01"),
    ]:
        resources += [patient(pid, born), _seen(pid)]
    resources += [
        immunization("october", "f1", "2026-10-01", "158"),
        immunization("august-1", "f2", "2026-08-01", "205"),
        immunization("july-31", "f3", "2026-07-31", "150"),
        immunization("last-season", "f4", "2025-10-15", "140"),
        immunization("not-done", "f5", "2026-10-01", "158", status="not-done"),
        encounter("hospice", "f6", "2026-09-01", HOSPICE_ENCOUNTER),
        immunization("is-17", "f7", "2026-10-01", "158"),
    ]
    import_resources(tmp_path / "flu", resources)

    statuses = _statuses(_evaluate("FLU"))
    nearer = _statuses(_evaluate("FLU", horizon_days=120))

    # The 2026-27 season ends 2027-03-31: 90 days after the as-of date.
    assert statuses["october"] == ("met", D(2027, 3, 31), "")
    assert nearer["october"] == ("due_soon", D(2027, 3, 31), "")
    assert statuses["august-1"] == ("met", D(2027, 3, 31), "")
    # A dose before August 1 belongs to the season that ended on March 31.
    assert statuses["july-31"] == ("overdue", D(2026, 3, 31), "")
    assert statuses["last-season"] == ("overdue", D(2026, 3, 31), "")
    assert statuses["not-done"] == ("overdue", None, "")
    assert statuses["never"] == ("overdue", None, "")
    assert statuses["hospice"] == ("excluded", None, "hospice")
    assert "is-17" not in statuses


def test_practice_value_sets_load_into_the_terminology_tables_under_careloops_oid(
    tmp_path: Path,
) -> None:
    import_resources(tmp_path / "one", [patient("p", "1950-01-01"), _seen("p")])

    _evaluate("AWV")

    [awv] = ValueSet.objects.filter(name="Medicare Annual Wellness Visit")
    assert awv.oid.startswith(f"{CARELOOP_OID_ROOT}.1.")
    assert awv.version.startswith("careloop-")
    codes = set(ValueSetCode.objects.filter(value_set=awv).values_list("system", "code"))
    assert (HCPCS, "G0439") in codes and (VSAC_HCPCS, "G0438") in codes
    # The OID root is a UUID arc (2.25, ITU-T X.667): no registration needed.
    assert CARELOOP_OID_ROOT.startswith("2.25.")
