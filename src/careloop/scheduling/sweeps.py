"""The scheduling app's sweep jobs: waitlist offers and automatic no-shows."""

from __future__ import annotations

from careloop.core.sweep import sweep_job


@sweep_job("scheduling.waitlist", every=60, lease=600)
def waitlist() -> None:
    """Offer freed time not yet offered; expire unclaimed offers and ask the next wave."""
    from careloop.scheduling.waitlist import waitlist_sweep

    waitlist_sweep()


@sweep_job("scheduling.no_show", every=60, lease=600)
def no_show() -> None:
    """Mark visits nobody checked in for as no-shows (when the practice turned it on)."""
    from careloop.scheduling.no_show import no_show_sweep

    no_show_sweep()
