"""`careloop caregaps evaluate`: the summary table, one patient, bad input."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from careloop.caregaps.models import MeasureRun, PatientMeasureResult
from careloop.security.models import AuditEvent
from tests.caregaps.gaps_practice import import_practice

pytestmark = pytest.mark.django_db


@pytest.fixture
def practice(tmp_path: Path) -> dict[str, uuid.UUID]:
    return import_practice(tmp_path / "practice")


def _evaluate(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("caregaps", "evaluate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_summary_table_counts_each_status(practice: dict[str, uuid.UUID]) -> None:
    text, progress = _evaluate("--measure", "CMS125", "--as-of", "2026-12-01")

    header, row = (line.split() for line in text.splitlines()[1:3])
    assert header[:7] == [
        "measure",
        "group",
        "met",
        "due_soon",
        "overdue",
        "excluded",
        "not_applicable",
    ]
    # met, soon, never, hospice: the man is outside the initial population.
    assert row[:7] == ["CMS125", "1", "1", "1", "1", "1", "0"]
    assert "1/1 done" in progress
    assert not any(str(patient_id) in text + progress for patient_id in practice.values())


def test_one_patient_is_re_evaluated_in_the_current_run(practice: dict[str, uuid.UUID]) -> None:
    _evaluate("--measure", "CMS125", "--as-of", "2026-12-01")
    run = MeasureRun.objects.get()
    PatientMeasureResult.objects.filter(run=run, patient=practice["met"]).update(status="overdue")

    text, _ = _evaluate("--measure", "CMS125", "--patient", "met")  # the source's Patient id

    assert MeasureRun.objects.count() == 1
    row = PatientMeasureResult.objects.get(run=run, patient=practice["met"])
    assert row.status == "met"
    assert text.splitlines()[1].split()[:3] == ["CMS125", "1", "1"]
    assert AuditEvent.objects.filter(action="caregaps.evaluate").count() == 2


def test_a_patient_needs_a_current_run_and_a_known_id(practice: dict[str, uuid.UUID]) -> None:
    with pytest.raises((CommandError, SystemExit)):
        call_command("caregaps", "evaluate", "--measure", "CMS125", "--patient", "met")
    _evaluate("--measure", "CMS125", "--as-of", "2026-12-01")
    with pytest.raises((CommandError, SystemExit)):
        call_command("caregaps", "evaluate", "--patient", "nobody")
    assert MeasureRun.objects.count() == 1


# As an operator runs it: outside any transaction (CLUSTER cannot run in one that has
# written rows with deferred constraint checks).
@pytest.mark.django_db(transaction=True)
def test_cluster_lays_the_facts_out_by_code_and_measures_still_agree(
    practice: dict[str, uuid.UUID],
) -> None:
    from django.db import connection

    before, _ = _evaluate("--measure", "CMS125", "--as-of", "2026-12-01")
    out = io.StringIO()
    call_command("caregaps", "cluster", stdout=out)

    if connection.vendor == "postgresql":
        assert out.getvalue().startswith("clinical facts clustered by code in ")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.indisclustered FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = 'fact_kind_code_idx'"
            )
            assert cursor.fetchone() == (True,)
    else:
        assert out.getvalue().strip() == "nothing to do: sqlite has no clustered tables"
    after, _ = _evaluate("--measure", "CMS125", "--as-of", "2026-12-01")
    # The same counts per status (the last columns are the run's seconds and number).
    assert [line.split()[:7] for line in after.splitlines()[1:]] == [
        line.split()[:7] for line in before.splitlines()[1:]
    ]
