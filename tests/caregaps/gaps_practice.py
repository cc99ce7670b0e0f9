"""A small practice for the report tests, imported through the real FHIR ingest.

CMS125 (breast cancer screening) in 2026, statuses as of 2026-12-01:

| source id | who | CMS125 |
| --- | --- | --- |
| met | mammogram 2025-04-02 | met (until 2027-07-02) |
| soon | mammogram 2024-10-20 | due soon (until 2027-01-20) |
| never | no mammogram | overdue |
| hospice | hospice encounter | excluded |
| man | male | outside the initial population |
"""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

from tests.caregaps.fhir_resources import (
    HOSPICE_ENCOUNTER,
    OFFICE_VISIT,
    encounter,
    import_resources,
    mammogram,
    patient,
    patient_ids,
)

AS_OF = datetime.date(2026, 12, 1)


def resources() -> list[dict[str, Any]]:
    visit = "2026-03-10"
    return [
        patient("met"),
        encounter("met", "e1", visit, OFFICE_VISIT),
        mammogram("met", "m1", "2025-04-02"),
        patient("soon"),
        encounter("soon", "e2", visit, OFFICE_VISIT),
        mammogram("soon", "m2", "2024-10-20"),
        patient("never"),
        encounter("never", "e3", visit, OFFICE_VISIT),
        patient("hospice"),
        encounter("hospice", "e4", visit, OFFICE_VISIT),
        encounter("hospice", "e5", "2026-06-01", HOSPICE_ENCOUNTER),
        patient("man", sex="male"),
        encounter("man", "e6", visit, OFFICE_VISIT),
    ]


def import_practice(
    folder: Path, items: list[dict[str, Any]] | None = None
) -> dict[str, uuid.UUID]:
    """Import the practice (or `items`) through the ingest; source id -> careloop id."""
    import_resources(folder, items if items is not None else resources())
    return patient_ids()
