from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import CommandParser
from django.db import connections

from careloop.core.cli import CareloopCommand
from careloop.core.server.listen import BindAddress, ListenError, bind_parse, listener_open
from careloop.core.server.plan import certificate_choose
from careloop.core.server.supervisor import Child, Supervisor
from careloop.core.server.tls import CertificatePair, TLSError, server_context
from careloop.security.demo_users import (
    DemoSignIn,
    demo_credentials_path,
    demo_sign_in_text,
    demo_users_ensure,
)
from careloop.security.permissions import Op, Resource

READY_TIMEOUT_SECONDS = 90.0


class Command(CareloopCommand):
    help = (
        "The embedded demo: migrate, fill a demo practice on first start, create demo "
        "staff sign-ins, then serve HTTPS and run the worker until Ctrl-C."
    )
    requires_system_checks: list[str] = []
    # Migrating the schema and the demo sign-ins. The demo fill, server and worker it
    # starts are gated by their own declarations (`call_command`, child processes).
    permissions = ((Op.WRITE, Resource.CONFIG), (Op.WRITE, Resource.USERS))

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--bind",
            default=settings.SERVE_BIND,
            metavar="HOST:PORT",
            help=f"Address to serve on (default: CARELOOP_BIND, {settings.SERVE_BIND}).",
        )
        parser.add_argument(
            "--patients",
            type=_count,
            default=2000,
            metavar="N",
            help="Demo patients to create on first start (default: 2000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            self.fail(
                "'run' is the embedded demo and is refused in production. Run 'careloop "
                "serve' and 'careloop worker' under your process supervisor instead."
            )
        try:
            address = bind_parse(options["bind"])
            if address.port == 0:
                raise ListenError("--bind needs a fixed port for 'run', such as 127.0.0.1:8443.")
            pair = certificate_choose(cert=None, key=None)
            if pair is not None:
                server_context(cert_file=pair.cert_file, key_file=pair.key_file)
            # Probe the port now so a busy one is reported before minutes of demo fill.
            listener_open(address).close()
        except (ListenError, TLSError) as error:
            self.fail(str(error))
        call_command("migrate", verbosity=0, interactive=False)
        self._demo_fill(patients=options["patients"])
        credentials = demo_users_ensure()
        connections.close_all()
        self._serve(address=address, pair=pair, credentials=credentials)

    def _demo_fill(self, *, patients: int) -> None:
        # Cross-app read of one fact ("is the practice empty?"); no selector exists for it yet.
        from careloop.patients.models import Patient

        if Patient.objects.exists():
            return
        if "demo" not in get_commands():
            self.stdout.write(
                "careloop run: the demo command is not installed, so the practice starts empty."
            )
            return
        self.stdout.write(
            f"Filling the demo practice with {patients} patients (first start only)..."
        )
        self.stdout.flush()
        call_command("demo", patients=patients)

    def _serve(
        self,
        *,
        address: BindAddress,
        pair: CertificatePair | None,
        credentials: list[DemoSignIn],
    ) -> None:
        serve = [sys.executable, "-m", "careloop", "serve", "--bind", str(address)]
        if pair is not None:
            serve += ["--cert", str(pair.cert_file), "--key", str(pair.key_file)]
        supervisor = Supervisor(
            children=[
                Child(name="web server", command=serve),
                Child(name="worker", command=[sys.executable, "-m", "careloop", "worker"]),
            ]
        )
        supervisor.install_signal_handlers()
        supervisor.start(env=dict(os.environ))
        probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address.host, address.host)  # noqa: S104
        if supervisor.wait_until_serving(
            host=probe_host, port=address.port, timeout=READY_TIMEOUT_SECONDS
        ):
            self._banner(address=address, pair=pair, credentials=credentials)
            supervisor.wait_for_stop()
        early = supervisor.exited() if supervisor.stop_signal is None else None
        codes = supervisor.stop()
        if early is not None:
            self.fail(
                f"the {early.name} stopped unexpectedly (exit code {codes[early.name]}); "
                "see its messages above."
            )
        if supervisor.stop_signal is None:
            self.fail(f"the web server did not answer within {READY_TIMEOUT_SECONDS:.0f} seconds.")
        failed = {name: code for name, code in codes.items() if code != 0}
        if failed:
            detail = ", ".join(f"{name} exit code {code}" for name, code in failed.items())
            self.fail(f"stopped, but not cleanly ({detail}).", code=1)
        self.stdout.write("careloop stopped.")

    def _banner(
        self,
        *,
        address: BindAddress,
        pair: CertificatePair | None,
        credentials: list[DemoSignIn],
    ) -> None:
        url = f"https://{address}/"
        lines = ["", f"careloop is running at {url}"]
        if pair is not None and pair.cert_file.parent == settings.TLS_DIR:
            lines.append(
                f"  The certificate ({pair.cert_file}) is self-signed for localhost: "
                "your browser will ask you to accept it once."
            )
        lines.append(f"  Demo sign-ins (kept in {demo_credentials_path()}, mode 0600):")
        # Password, then the TOTP secret as text and as a QR code to scan (security).
        lines.append(demo_sign_in_text(credentials))
        lines += ["  Press Ctrl-C to stop.", ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value
