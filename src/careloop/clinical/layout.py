"""The clinical facts' physical order, for population-scale reads.

Facts arrive patient by patient (an import writes one patient's resources together),
so on disk a code's facts are spread over the whole table: a measure's value set of
78,000 BMI readings at 20,000 patients lay on 37,000 of the table's 42,000 pages, and
every criterion that reads them read almost the whole table from disk again.
`facts_cluster` rewrites the table in (kind, code) order (PostgreSQL's CLUSTER on the
(kind, code) index), so a value set's facts lie together: each criterion reads a few
hundred pages. One patient's facts are then found through the (patient, kind) index
on a page each, which the profile page does not notice.

CLUSTER locks the table against reads and writes while it runs (seconds at 20,000
patients; minutes at a million), and facts imported afterwards are appended in arrival
order until the next run: run it after a large import, and nightly when the practice
is closed (`careloop caregaps cluster`; docs/caregaps.md). SQLite has no clustering;
there it does nothing and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connections

from careloop.clinical.models import ClinicalFact

# The index whose order the table takes: (kind, code), as value-set retrieves read.
CLUSTER_INDEX = "fact_kind_code_idx"


@dataclass(frozen=True)
class ClusterResult:
    clustered: bool
    seconds: float
    reason: str = ""


def facts_cluster(*, using: str = "default") -> ClusterResult:
    """Rewrite the facts table in (kind, code) order and refresh its statistics."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return ClusterResult(False, 0.0, f"{connection.vendor} has no clustered tables")
    assert any(i.name == CLUSTER_INDEX for i in ClinicalFact._meta.indexes)  # noqa: S101
    table = connection.ops.quote_name(ClinicalFact._meta.db_table)
    began = time.perf_counter()
    # The table's name from model metadata, quoted; the index name is our constant.
    cluster = f"CLUSTER {table} USING {CLUSTER_INDEX}"
    analyze = f"ANALYZE {table}"
    with connection.cursor() as cursor:
        cursor.execute(cluster)  # nosemgrep: careloop-no-string-built-sql
        cursor.execute(analyze)  # nosemgrep: careloop-no-string-built-sql
    return ClusterResult(True, time.perf_counter() - began)
