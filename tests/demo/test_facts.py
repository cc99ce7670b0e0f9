"""The database load and the NDJSON export describe the same clinical facts: the
export imported through `careloop import fhir` gives, row for row, what the demo
loaded directly (less the import's bookkeeping: source name, version, lastUpdated,
content hash)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from careloop.clinical.models import ClinicalFact
from careloop.demo.rows import SOURCE_SYSTEM
from tests.demo.conftest import AS_OF, export

pytestmark = pytest.mark.django_db

COMPARED = (
    "kind",
    "system",
    "code",
    "display",
    "status",
    "category",
    "effective_start",
    "effective_end",
    "value_num",
    "value_code",
    "unit",
    "source_id",
    "resource_type",
    "part",
    "element",
    "subject_ref",
    "recorded_at",
    "negated",
    "intent",
    "value_system",
    "encounter_ref",
)


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def _facts(source: str) -> list[tuple[Any, ...]]:
    return sorted(
        ClinicalFact.objects.filter(source_system=source).values_list(*COMPARED),
        key=repr,
    )


def test_imported_export_gives_the_facts_the_database_load_gave(tmp_path: Path) -> None:
    call_command("demo", patients=40, seed=4, as_of=AS_OF, stdout=_Null())
    loaded = _facts(SOURCE_SYSTEM)
    out = export(tmp_path / "nd", patients=40, seed=4)
    call_command("import", "fhir", str(out), "--source", "emr", stdout=_Null())
    imported = _facts("emr")
    assert len(loaded) > 40 * 20
    missing = [row for row in loaded if row not in set(imported)][:5]
    extra = [row for row in imported if row not in set(loaded)][:5]
    assert (missing, extra) == ([], [])
    assert loaded == imported
    kinds = {row[0] for row in loaded}
    assert {"encounter", "observation", "procedure", "service_request"} <= kinds
