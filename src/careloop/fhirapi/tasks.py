"""The FHIR API's task: a nudge to run one export now. The argument is a job id only."""

from __future__ import annotations

import uuid

from django_tasks import task

from careloop.fhirapi.export import export_run


@task()
def fhir_export_nudge(job_id: str) -> bool:
    """Run the export now; the export sweep takes it up if this task is lost."""
    return export_run(job_id=uuid.UUID(job_id))
