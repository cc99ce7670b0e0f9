"""No double booking, held by PostgreSQL: an exclusion constraint over each provider's
claimed time ([start, busy_until)) of the bookings that still hold it.

Only rows careloop booked carry `busy_until`, so appointments the EHR reports (which
may overlap: the EHR is the record, careloop flags the conflict) never make this
migration or an ingest fail. SQLite has no exclusion constraints: there the booking
service checks for overlap inside an exclusive (serialised) transaction instead.
"""

from __future__ import annotations

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

# The same statuses as careloop.scheduling.models.HOLDING_STATUSES, frozen here as a
# migration must be.
EXTENSION = "CREATE EXTENSION IF NOT EXISTS btree_gist"
CREATE = """
ALTER TABLE scheduling_appointment ADD CONSTRAINT appt_no_double_booking
    EXCLUDE USING gist (provider_id WITH =, tstzrange(start, busy_until, '[)') WITH &&)
    WHERE (busy_until IS NOT NULL
           AND status IN ('booked', 'confirmed', 'checked_in', 'fulfilled'))
"""
DROP = "ALTER TABLE scheduling_appointment DROP CONSTRAINT IF EXISTS appt_no_double_booking"


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # btree_gist gives the uuid column its `=` under GiST; trusted, so the
        # database owner may create it.
        schema_editor.execute(EXTENSION)
        schema_editor.execute(CREATE)


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0002_availability_rules")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
