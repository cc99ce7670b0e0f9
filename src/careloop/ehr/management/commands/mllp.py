"""`careloop mllp [--bind HOST:PORT] [--cert PEM --key PEM] [--source NAME [--vendor V]]`.

Listens for HL7 v2 ADT and SIU messages over MLLP (careloop.ehr.mllp) and applies them
(careloop.ehr.hl7_apply) until SIGTERM or Ctrl-C. The source is registered on first
use (kind hl7) and must name a vendor whose BAA is in force.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from careloop.core.cli import CareloopCommand
from careloop.core.server.listen import ListenError, bind_parse, bound_port, listener_open
from careloop.core.server.tls import TLSError, server_context
from careloop.ehr.hl7_apply import Hl7Handler, Hl7SourceError, hl7_source_ensure
from careloop.ehr.mllp import Limits, MllpServer
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Receive HL7 v2 ADT and SIU messages over MLLP until SIGTERM or Ctrl-C."
    # Registers the source (configuration) and writes what the messages carry.
    permissions = (
        (Op.READ, Resource.CONFIG),
        (Op.WRITE, Resource.CONFIG),
        (Op.WRITE, Resource.DEMOGRAPHICS),
        (Op.WRITE, Resource.CONTACT),
        (Op.WRITE, Resource.APPOINTMENTS),
        (Op.WRITE, Resource.CLINICAL),
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--bind", default=settings.MLLP_BIND, help="HOST:PORT (default: 127.0.0.1:2575)"
        )
        parser.add_argument("--cert", help="PEM certificate chain: speak TLS 1.2+ only")
        parser.add_argument("--key", help="PEM private key of --cert")
        parser.add_argument("--source", default="hl7", help="The feed's source name (default hl7)")
        parser.add_argument("--vendor", default="", help="Its vendor, to register a new source")

    def handle(self, *args: Any, **options: Any) -> None:
        cert, key = options["cert"], options["key"]
        if bool(cert) != bool(key):
            self.fail("give both --cert and --key for TLS, or neither.")
        try:
            source = hl7_source_ensure(name=options["source"], vendor_name=options["vendor"])
            tls = server_context(cert_file=Path(cert), key_file=Path(key)) if cert else None
            listener = listener_open(bind_parse(options["bind"]))
        except (Hl7SourceError, TLSError, ListenError) as error:
            self.fail(str(error))
        server = MllpServer(
            listener=listener,
            handler=Hl7Handler(source=source),
            limits=Limits(
                max_bytes=settings.MLLP_MAX_BYTES,
                frame_timeout=float(settings.MLLP_FRAME_TIMEOUT_SECONDS),
                idle_timeout=float(settings.MLLP_IDLE_TIMEOUT_SECONDS),
                max_connections=settings.MLLP_MAX_CONNECTIONS,
            ),
            tls=tls,
        )
        server.install_signal_handlers()
        host = listener.getsockname()[0]
        mode = "TLS" if tls else "plain MLLP: use only on a private network"
        self.stdout.write(f"careloop mllp: listening on {host}:{bound_port(listener)} ({mode})")
        self.stdout.flush()
        server.serve_forever()
        self.stdout.write("careloop mllp: stopped")
