"""`careloop ehr keygen | add-source | sources | sync`: pulling data from a live EHR.

careloop ehr keygen [--alg RS384|ES384]     a signing key pair; prints the JWKS to
                                            register with the EHR
careloop ehr add-source NAME --fhir-base URL --token-url URL --client-id ID
                        --vendor VENDOR [--group ID] [--key-id KID]
careloop ehr sources
careloop ehr sync NAME [--since ISO | --full]
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from django.core.management.base import CommandParser

from careloop.core.cli import CareloopCommand
from careloop.ehr import smart
from careloop.ehr.models import Source, SourceKind
from careloop.ehr.sync import SourceError, SyncError, source_add, source_sync
from careloop.security.permissions import Op, Resource


def _instant(text: str | None) -> datetime.datetime | None:
    """--since as an aware time, or None when the text is not one."""
    if text is None:
        return None
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


class Command(CareloopCommand):
    help = "Pull data from a live EHR with SMART Backend Services and Bulk Data."
    # keygen and add-source configure; sync writes every kind of patient data it maps.
    permissions = (
        (Op.READ, Resource.CONFIG),
        (Op.WRITE, Resource.CONFIG),
        (Op.WRITE, Resource.KEYS),
        (Op.WRITE, Resource.DEMOGRAPHICS),
        (Op.WRITE, Resource.CONTACT),
        (Op.WRITE, Resource.COVERAGE),
        (Op.WRITE, Resource.APPOINTMENTS),
        (Op.WRITE, Resource.CLINICAL),
        (Op.WRITE, Resource.CONSENT),
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        keygen = sub.add_parser("keygen", help="Make a signing key pair; print the JWKS.")
        keygen.add_argument("--alg", choices=smart.ALGORITHMS, default="RS384")
        add = sub.add_parser("add-source", help="Register an EHR's FHIR server.")
        add.add_argument("name")
        add.add_argument("--fhir-base", required=True)
        add.add_argument("--token-url", required=True)
        add.add_argument("--client-id", required=True)
        add.add_argument("--group", default="", help="Group id: export that group only")
        add.add_argument("--vendor", required=True, help="The vendor whose BAA covers it")
        add.add_argument("--key-id", default="", help="Signing key (default: the newest)")
        sub.add_parser("sources", help="List sources and their last sync.")
        sync = sub.add_parser("sync", help="Export and import what changed since the last sync.")
        sync.add_argument("name")
        window = sync.add_mutually_exclusive_group()
        window.add_argument("--since", help="ISO time with zone, e.g. 2026-01-01T00:00Z")
        window.add_argument("--full", action="store_true", help="Everything, not only changes")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "keygen":
                self._keygen(options["alg"])
            elif action == "add-source":
                self._add(options)
            elif action == "sources":
                self._sources()
            else:
                since = _instant(options["since"])
                if options["since"] and since is None:
                    self.fail("--since takes an ISO time with its zone, e.g. 2026-11-01T00:00Z.")
                self._sync(options["name"], since, options["full"])
        except (SourceError, SyncError, smart.SmartError) as error:
            self.fail(str(error))

    def _keygen(self, alg: str) -> None:
        key = smart.key_generate(alg=alg)
        self.stderr.write(f"Made signing key {key.kid} ({alg}); register this JWKS with the EHR:")
        # Every stored key, so the EHR can accept the old key until sources move over.
        self.stdout.write(json.dumps(smart.jwks(smart.keys_all()), indent=2))

    def _add(self, options: dict[str, Any]) -> None:
        key_id = options["key_id"]
        if not key_id:
            keys = smart.keys_all()
            if not keys:
                self.fail("there is no signing key yet; run 'careloop ehr keygen' first.")
            key_id = keys[0].kid
        source = source_add(
            name=options["name"],
            fhir_base=options["fhir_base"],
            token_url=options["token_url"],
            client_id=options["client_id"],
            group_id=options["group"],
            vendor_name=options["vendor"],
            key_id=key_id,
        )
        self.stdout.write(f"Registered source {source.name} (key {source.key_id}).")

    def _sources(self) -> None:
        for source in Source.objects.filter(kind=SourceKind.FHIR).select_related("vendor"):
            last = source.last_transaction_time
            self.stdout.write(
                f"{source.name}\t{source.fhir_base}\t{source.vendor or '-'}\t"
                f"{'Group/' + source.group_id if source.group_id else 'Patient'}\t"
                f"{last.isoformat() if last else 'never synced'}"
            )

    def _sync(self, name: str, since: datetime.datetime | None, full: bool) -> None:
        source = Source.objects.filter(name=name, kind=SourceKind.FHIR).first()
        if source is None:
            self.fail(f"there is no FHIR source named {name!r}; see 'careloop ehr sources'.")
        outcome = source_sync(
            source=source, since=since, full=full, progress=lambda text: self.stderr.write(text)
        )
        counts = outcome.run.counts
        read = sum(c.get("read", 0) for c in counts.values())
        created = sum(c.get("created", 0) for c in counts.values())
        updated = sum(c.get("updated", 0) for c in counts.values())
        quarantined = sum(c.get("quarantined", 0) for c in counts.values())
        self.stdout.write(
            f"Synced {source.name}: {outcome.files} files, {read} resources read, "
            f"{created} created, {updated} updated, {quarantined} quarantined; "
            f"checkpoint {outcome.transaction_time.isoformat()}."
        )
        if quarantined:
            self.fail(f"{quarantined} items were quarantined; see the quarantine list.", code=1)
