"""Domain errors that selectors and services raise; the web layer maps them to 404 and 403."""

from __future__ import annotations


class NotFound(Exception):  # noqa: N818 - the domain's word, as in "patient not found"
    """The object does not exist, or the actor may not know that it exists.

    Both cases raise this same error so that a response never tells them apart.
    """


class PermissionDenied(Exception):  # noqa: N818
    """The actor's role may not perform this action at all."""
