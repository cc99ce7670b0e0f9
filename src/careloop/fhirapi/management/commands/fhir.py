"""`careloop fhir client add|list|disable`: register the systems that call the FHIR API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from careloop.core.cli import CareloopCommand
from careloop.core.errors import NotFound
from careloop.fhirapi.clients import ClientError, client_add, client_disable, client_list
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Register, list and disable FHIR API clients (SMART Backend Services)."
    permissions = ((Op.READ, Resource.CONFIG), (Op.WRITE, Resource.CONFIG))

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_subparsers(dest="what", required=True)
        client = what.add_parser("client", help="FHIR API clients")
        action = client.add_subparsers(dest="action", required=True)
        add = action.add_parser("add", help="Register a client with its public keys.")
        add.add_argument("name")
        add.add_argument("--jwks", required=True, help="File with the client's public JWKS.")
        add.add_argument("--scope", action="append", required=True, help="e.g. system/*.read")
        add.add_argument("--role", required=True, help="The staff role the client acts with.")
        action.add_parser("list", help="List clients.")
        disable = action.add_parser("disable", help="Disable a client and revoke its tokens.")
        disable.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "add":
            self._add(options)
        elif options["action"] == "list":
            for client in client_list():
                state = "active" if client.active else "disabled"
                fields = (client.name, client.client_id, client.role, " ".join(client.scopes))
                self.stdout.write("\t".join((*fields, state)))
        else:
            try:
                client_disable(name=options["name"])
            except NotFound:
                name = options["name"]
                raise CommandError(
                    f"no client named {name!r}; see 'careloop fhir client list'"
                ) from None
            self.stdout.write(f"disabled {options['name']}")

    def _add(self, options: dict[str, Any]) -> None:
        try:
            jwks = json.loads(Path(options["jwks"]).read_text())
        except (OSError, ValueError):
            raise CommandError("--jwks must name a readable JSON file holding a JWKS") from None
        scopes = [part for scope in options["scope"] for part in scope.split()]
        try:
            client = client_add(
                name=options["name"], jwks=jwks, scopes=scopes, role=options["role"]
            )
        except ClientError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"client_id {client.client_id}")
