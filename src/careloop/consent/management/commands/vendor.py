"""`careloop vendor add NAME --kind sms | list | set-baa NAME --status active --signed ...`."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import CommandParser

from careloop.consent.baa import VendorError, vendor_add, vendor_set_baa
from careloop.consent.models import BaaStatus, Vendor, VendorKind
from careloop.core.cli import CareloopCommand
from careloop.security.permissions import Op, Resource


def _date(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


class Command(CareloopCommand):
    help = "The BAA registry: vendors that may receive PHI."
    permissions = ((Op.READ, Resource.CONFIG), (Op.WRITE, Resource.CONFIG))

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Register a vendor (no BAA yet).")
        add.add_argument("name")
        add.add_argument("--kind", required=True, choices=VendorKind.values)
        sub.add_parser("list", help="List vendors and their BAA.")
        baa = sub.add_parser("set-baa", help="Record the vendor's BAA status and dates.")
        baa.add_argument("name")
        baa.add_argument("--status", required=True, choices=BaaStatus.values)
        baa.add_argument("--signed", type=_date, help="YYYY-MM-DD")
        baa.add_argument("--expires", type=_date, help="YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "add":
                vendor = vendor_add(actor=None, name=options["name"], kind=options["kind"])
                self.stdout.write(f"Registered {vendor.name} ({vendor.get_kind_display()}).")
            elif action == "list":
                for v in Vendor.objects.all():
                    self.stdout.write(
                        f"{v.name}\t{v.kind}\t{v.baa_status}\t"
                        f"{v.baa_signed_on or '-'}\t{v.baa_expires_on or '-'}"
                    )
            else:
                found = Vendor.objects.filter(name=options["name"]).first()
                if found is None:
                    self.fail(f"there is no vendor named {options['name']!r}.")
                vendor = vendor_set_baa(
                    actor=None,
                    vendor=found,
                    status=BaaStatus(options["status"]),
                    signed_on=options["signed"],
                    expires_on=options["expires"],
                )
                self.stdout.write(f"{vendor.name}: BAA {vendor.baa_status}.")
        except VendorError as error:
            self.fail(str(error))
