"""The FHIR API's sweep jobs: exports whose task was lost, and expired state."""

from __future__ import annotations

from careloop.core import clock
from careloop.core.sweep import sweep_job
from careloop.fhirapi.export import exports_due, exports_prune
from careloop.fhirapi.models import AccessToken, SearchCursor, UsedAssertion


@sweep_job("fhirapi.exports", every=30, lease=3600)
def exports() -> None:
    """Run queued exports and those whose worker died (lease expired)."""
    exports_due()


@sweep_job("fhirapi.prune", every=3600)
def prune() -> None:
    """Forget expired tokens, assertion ids and paging cursors, and old export files."""
    at = clock.now()
    AccessToken.objects.filter(expires_at__lt=at).delete()
    UsedAssertion.objects.filter(expires_at__lt=at).delete()
    SearchCursor.objects.filter(expires_at__lt=at).delete()
    exports_prune()
