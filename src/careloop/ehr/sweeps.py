"""The ehr app's sweep jobs."""

from __future__ import annotations

import logging

from careloop.core.clock import now
from careloop.core.models import SweepJob
from careloop.core.sweep import sweep_job
from careloop.ehr.sync import SyncError, source_sync, sources_due

log = logging.getLogger(__name__)
NAME = "ehr.sync"


# Checked every five minutes; it syncs only once a night (settings.EHR_SYNC_AT). The
# lease outlasts the longest export (EHR_EXPORT_TIMEOUT_SECONDS is 6 hours by default),
# so a second worker does not start the same nightly run.
@sweep_job(NAME, every=300, lease=8 * 60 * 60)
def nightly_sync() -> None:
    """Incremental Bulk Data sync of every active FHIR source, once a night.

    Due when today's sync time has passed since this job last finished; one source's
    failure (recorded as a failed run with its reason) does not stop the others. A
    worker that dies mid-sync leaves the job unfinished, so it runs again when its
    lease expires: the checkpoint only moved for sources that completed.
    """
    last = SweepJob.objects.filter(name=NAME).values_list("last_finished_at", flat=True).first()
    for source in sources_due(at=now(), last_sweep=last):
        try:
            source_sync(source=source)
        except SyncError as error:
            log.warning("nightly sync of source %s failed: %s", source.name, error)
