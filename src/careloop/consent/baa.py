"""The BAA registry: which vendors may receive PHI, and the check every integration makes.

`baa_require` is called by an integration before it sends PHI to its vendor; it raises
`NoActiveBaa` (with the vendor's name and what is wrong, never PHI) when there is no
BAA in force on that day, so the caller parks the message with that reason.
"""

from __future__ import annotations

import datetime
import uuid

from django.db import transaction

from careloop.consent.models import BaaStatus, Vendor, VendorKind
from careloop.core.clock import now
from careloop.security.audit import audit_record
from careloop.security.console import console_actor
from careloop.security.models import User
from careloop.security.permissions import Op, Resource, require


class NoActiveBaa(Exception):  # noqa: N818 - the domain's words
    """PHI may not be sent to this vendor."""

    def __init__(self, vendor_name: str, why: str) -> None:
        super().__init__(
            f"No active BAA on file for {vendor_name}: PHI may not be sent to it ({why})"
        )
        self.vendor_name = vendor_name


class VendorError(ValueError):
    """A registry change that cannot be made; the message says what to fix."""


def baa_require(*, vendor_name: str, at: datetime.datetime) -> Vendor:
    """The vendor, if a BAA with it is in force on `at`'s date; else `NoActiveBaa`."""
    vendor = Vendor.objects.filter(name=vendor_name).first()
    if vendor is None:
        raise NoActiveBaa(vendor_name, "vendor not registered")
    if vendor.baa_status != BaaStatus.ACTIVE:
        raise NoActiveBaa(vendor_name, f"BAA status {vendor.baa_status}")
    day = at.date()
    if vendor.baa_signed_on is not None and day < vendor.baa_signed_on:
        raise NoActiveBaa(vendor_name, f"BAA starts {vendor.baa_signed_on.isoformat()}")
    if vendor.baa_expires_on is not None and day >= vendor.baa_expires_on:
        raise NoActiveBaa(vendor_name, f"BAA expired {vendor.baa_expires_on.isoformat()}")
    return vendor


def _audit(actor: User | None, vendor: Vendor, fields: tuple[str, ...]) -> None:
    audit_record(
        actor=actor if actor is not None else console_actor(),
        action="vendor.change",
        resource_type="vendor",
        resource_id=str(vendor.id),
        fields=fields,
    )


@transaction.atomic
def vendor_add(*, actor: User | None, name: str, kind: VendorKind) -> Vendor:
    """Register a vendor with no BAA yet. `actor` None is the console."""
    if actor is not None:
        require(actor, Op.WRITE, Resource.CONFIG)
    name = " ".join(name.split())
    if not name:
        raise VendorError("a vendor needs a name")
    if Vendor.objects.filter(name=name).exists():
        raise VendorError(f"vendor {name!r} is already registered")
    vendor = Vendor.objects.create(id=uuid.uuid4(), name=name, kind=kind, updated_at=now())
    _audit(actor, vendor, ("name", "kind"))
    return vendor


@transaction.atomic
def vendor_set_baa(
    *,
    actor: User | None,
    vendor: Vendor,
    status: BaaStatus,
    signed_on: datetime.date | None,
    expires_on: datetime.date | None,
) -> Vendor:
    if actor is not None:
        require(actor, Op.WRITE, Resource.CONFIG)
    if status == BaaStatus.ACTIVE and signed_on is None:
        raise VendorError("an active BAA needs the date it was signed")
    if signed_on and expires_on and expires_on <= signed_on:
        raise VendorError("a BAA must expire after it was signed")
    vendor.baa_status = status
    vendor.baa_signed_on = signed_on
    vendor.baa_expires_on = expires_on
    vendor.updated_at = now()
    vendor.save(update_fields=["baa_status", "baa_signed_on", "baa_expires_on", "updated_at"])
    _audit(actor, vendor, ("baa_status", "baa_signed_on", "baa_expires_on"))
    return vendor
