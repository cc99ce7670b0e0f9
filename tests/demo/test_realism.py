"""The demo practice looks like a US primary-care panel (checked on 600 patients)."""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.demo.conftest import AS_OF, export, read_ndjson

N = 600
SNOMED_HYPERTENSION = "59621000"
SNOMED_DIABETES = "44054006"


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(tmp_path_factory.mktemp("panel"), patients=N, seed=11)


def _ages(panel: Path) -> dict[str, int]:
    as_of = datetime.date.fromisoformat(AS_OF)
    return {
        p["id"]: (as_of - datetime.date.fromisoformat(p["birthDate"])).days // 365
        for p in read_ndjson(panel / "Patient.ndjson")
    }


def _patients_with(panel: Path, code: str) -> set[str]:
    return {
        c["subject"]["reference"].split("/")[1]
        for c in read_ndjson(panel / "Condition.ndjson")
        if c["code"]["coding"][0]["code"] == code
    }


def _payers(panel: Path) -> dict[str, str]:
    return {
        c["beneficiary"]["reference"].split("/")[1]: c["type"]["coding"][0]["display"]
        for c in read_ndjson(panel / "Coverage.ndjson")
        if c["status"] == "active"
    }


def test_age_mix_includes_children_and_seniors(panel: Path) -> None:
    ages = list(_ages(panel).values())
    children = sum(a < 18 for a in ages) / N
    seniors = sum(a >= 65 for a in ages) / N
    assert 0.12 <= children <= 0.3
    assert 0.12 <= seniors <= 0.3


def test_chronic_conditions_have_realistic_adult_prevalence(panel: Path) -> None:
    adults = {pid for pid, age in _ages(panel).items() if age >= 18}
    hypertension = len(_patients_with(panel, SNOMED_HYPERTENSION) & adults) / len(adults)
    diabetes = len(_patients_with(panel, SNOMED_DIABETES) & adults) / len(adults)
    assert 0.2 <= hypertension <= 0.45
    assert 0.06 <= diabetes <= 0.2


def test_insurance_mix_and_medicare_is_mostly_seniors(panel: Path) -> None:
    payers = _payers(panel)
    mix = Counter(payers.values())
    assert 0.38 <= mix["PRIVATE HEALTH INSURANCE"] / N <= 0.62
    assert 0.12 <= mix["MEDICARE"] / N <= 0.3
    assert 0.12 <= mix["MEDICAID"] / N <= 0.3
    assert 0.04 <= mix["Self-pay"] / N <= 0.16
    ages = _ages(panel)
    medicare = [pid for pid, payer in payers.items() if payer == "MEDICARE"]
    assert sum(ages[pid] >= 65 for pid in medicare) / len(medicare) >= 0.8


def test_about_one_in_seven_prefers_spanish(panel: Path) -> None:
    languages = Counter(
        p["communication"][0]["language"]["coding"][0]["code"]
        for p in read_ndjson(panel / "Patient.ndjson")
    )
    assert 0.1 <= languages["es"] / N <= 0.2
    assert len(languages) >= 4


def _no_show_rate(appointments: list[dict[str, Any]]) -> float:
    past = [a for a in appointments if a["status"] in ("fulfilled", "noshow", "cancelled")]
    return sum(a["status"] == "noshow" for a in past) / len(past)


def test_no_show_rate_is_realistic_and_higher_on_medicaid(panel: Path) -> None:
    appointments = read_ndjson(panel / "Appointment.ndjson")
    assert 0.1 <= _no_show_rate(appointments) <= 0.25
    payers = _payers(panel)

    def of(payer: str) -> list[dict[str, Any]]:
        return [
            a
            for a in appointments
            if payers.get(a["participant"][0]["actor"]["reference"].split("/")[1]) == payer
        ]

    assert _no_show_rate(of("MEDICAID")) > _no_show_rate(of("MEDICARE"))
    assert any(a["status"] == "booked" and a["start"] > AS_OF for a in appointments)


def test_mammography_leaves_care_gaps(panel: Path) -> None:
    ages = _ages(panel)
    women = {
        p["id"]
        for p in read_ndjson(panel / "Patient.ndjson")
        if p["gender"] == "female" and 42 <= ages[p["id"]] <= 74
    }
    cutoff = (datetime.date.fromisoformat(AS_OF) - datetime.timedelta(days=820)).isoformat()
    screened = {
        p["subject"]["reference"].split("/")[1]
        for p in read_ndjson(panel / "Procedure.ndjson")
        if p["code"]["coding"][0]["code"] == "77067" and p["performedDateTime"] >= cutoff
    }
    assert 0.55 <= len(screened & women) / len(women) <= 0.85


def test_codes_come_from_the_real_code_systems(panel: Path) -> None:
    vaccines = {
        i["vaccineCode"]["coding"][0]["code"] for i in read_ndjson(panel / "Immunization.ndjson")
    }
    assert {"20", "10", "03", "08", "21", "133", "83"} <= vaccines
    assert vaccines & {"140", "150", "158"}
    drugs = {
        m["medicationCodeableConcept"]["coding"][0]["code"]
        for m in read_ndjson(panel / "MedicationRequest.ndjson")
    }
    assert {"860975", "314076", "617312"} <= drugs
    visits = {e["type"][0]["coding"][0]["code"] for e in read_ndjson(panel / "Encounter.ndjson")}
    assert {"99213", "99214"} <= visits
    assert visits & {"G0438", "G0439"}
    labs = {o["code"]["coding"][0]["code"] for o in read_ndjson(panel / "Observation.ndjson")}
    assert {"4548-4", "39156-5", "44261-6", "72166-2", "29771-3", "10524-7"} <= labs
