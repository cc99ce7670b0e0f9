"""The fault drills' hands in the database, run as a `careloop`-configured subprocess.

The fault tests (tests/outreach/test_faults.py) and the campaign (bench/outreach_faults.py)
share a database with real worker processes, so they write it the way a process would,
through careloop's services. `python -m tests.outreach.fault_driver` reads commands,
one per line, on standard input and answers each with one line, `ok` or `error ...`:

    seed --tag T --count N [--channel sms|email]
    revoke KEY [KEY ...]

`seed` registers the vendors (with BAAs), makes N reachable patients with SMS consent
and queues one appointment message to each, keyed `fault-T-<n>`, through
`message_enqueue`; `revoke` withdraws the SMS and e-mail consent (the consent ledger)
of the patients the messages with those keys are for. One process serves a whole
drill, so a command costs no Django start-up; it holds no database session between
commands (a drill may end every session). Nothing of class I is printed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys

import django
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careloop.settings")
django.setup()

from careloop.consent.ledger import consent_record  # noqa: E402 - after django.setup()
from careloop.consent.models import (  # noqa: E402
    BaaStatus,
    CaptureMethod,
    Channel,
    ChannelOptIn,
    ConsentKind,
    ConsentStatus,
    ContentClass,
    Purpose,
    Vendor,
    VendorKind,
)
from careloop.core.clock import now  # noqa: E402
from careloop.outreach.models import Message  # noqa: E402
from careloop.outreach.outbox import Rendered, message_enqueue  # noqa: E402
from tests.outreach.faults import body, key, number  # noqa: E402
from tests.patients.builders import add_contact, make_patient  # noqa: E402

SINCE = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def seed(*, tag: str, count: int, channel: Channel) -> None:
    for name, kind in (("Twilio", VendorKind.SMS), ("E-mail relay", VendorKind.EMAIL)):
        Vendor.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "baa_status": BaaStatus.ACTIVE,
                "baa_signed_on": SINCE.date(),
                "updated_at": now(),
            },
        )
    for n in range(count):
        patient = make_patient(
            "Drill", f"Patient {tag} {n}", datetime.date(1960, 1, 1), time_zone="America/New_York"
        )
        add_contact(patient, "phone", number(tag, n), verified=True, can_sms=True)
        add_contact(patient, "email", f"drill.{tag}.{n}@example.org", verified=True, can_email=True)
        consent_record(
            patient=patient,
            kind=ConsentKind.SMS,
            status=ConsentStatus.GRANTED,
            capture_method=CaptureMethod.PORTAL_ESIGNATURE,
            captured_at=SINCE,
        )
        message_enqueue(
            patient=patient,
            channel=channel,
            purpose=Purpose.APPOINTMENT,
            content_class=ContentClass.LOGISTICS,
            template_id=f"fault-{tag}",
            template_version=1,
            rendered=Rendered(subject=f"Your visit ({tag} #{n})", body=body(tag, n)),
            idempotency_key=key(tag, n),
        )


def revoke(keys: list[str]) -> None:
    """The patient says no: SMS consent revoked, appointment e-mail opted out."""
    for message in Message.objects.filter(idempotency_key__in=keys).select_related("patient"):
        consent_record(
            patient=message.patient,
            kind=ConsentKind.SMS,
            status=ConsentStatus.REVOKED,
            capture_method=CaptureMethod.VERBAL,
        )
        ChannelOptIn.objects.update_or_create(
            patient=message.patient,
            channel=Channel.EMAIL,
            purpose=Purpose.APPOINTMENT,
            defaults={"opted_in": False, "updated_at": now()},
        )


def run(line: str) -> None:
    parser = argparse.ArgumentParser(prog="fault_driver", exit_on_error=False)
    sub = parser.add_subparsers(dest="action", required=True)
    seeding = sub.add_parser("seed")
    seeding.add_argument("--tag", required=True)
    seeding.add_argument("--count", type=int, required=True)
    seeding.add_argument("--channel", choices=["sms", "email"], default="sms")
    revoking = sub.add_parser("revoke")
    revoking.add_argument("keys", nargs="+")
    options = parser.parse_args(shlex.split(line))
    try:
        if options.action == "seed":
            seed(tag=options.tag, count=options.count, channel=Channel(options.channel))
        else:
            revoke(options.keys)
    finally:
        connections.close_all()


def main() -> None:
    for line in sys.stdin:
        try:
            run(line)
        except Exception as error:  # one line back to the drill, which fails on it
            print(f"error {type(error).__name__}: {error}", flush=True)
        else:
            print("ok", flush=True)


if __name__ == "__main__":
    main()
