from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db import connections

from careloop.core.cli import CareloopCommand
from careloop.core.server.gunicorn_app import CareloopServer, ServerOptions
from careloop.core.server.listen import (
    BindAddress,
    ListenError,
    bind_parse,
    bound_port,
    listener_open,
)
from careloop.core.server.plan import certificate_choose
from careloop.core.server.tls import TLSError, server_context
from careloop.security.permissions import Op, Resource


class Command(CareloopCommand):
    help = "Serve careloop over HTTPS (TLS 1.2+) with gunicorn until SIGTERM or Ctrl-C."
    # It reads the configuration (TLS key, bind address) and touches no data itself:
    # every request is checked against its own user's row.
    permissions = ((Op.READ, Resource.CONFIG),)
    # The server checks nothing the web requests would not; `careloop check` does that.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--bind",
            default=settings.SERVE_BIND,
            metavar="HOST:PORT",
            help=f"Address to listen on (default: CARELOOP_BIND, {settings.SERVE_BIND}).",
        )
        parser.add_argument("--cert", metavar="PEM", help="TLS certificate chain (PEM).")
        parser.add_argument("--key", metavar="PEM", help="TLS private key (PEM, unencrypted).")
        parser.add_argument(
            "--workers",
            type=_positive_int,
            default=settings.SERVE_WORKERS,
            metavar="N",
            help=f"Web worker processes (default: CARELOOP_WEB_WORKERS, {settings.SERVE_WORKERS}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            address = bind_parse(options["bind"])
            pair = certificate_choose(cert=options["cert"], key=options["key"])
            if pair is not None:
                # Load it now so a bad file is our one-line error, not a worker crash loop.
                server_context(cert_file=pair.cert_file, key_file=pair.key_file)
            listener = listener_open(address)
        except (ListenError, TLSError) as error:
            self.fail(str(error))
        shown = BindAddress(host=address.host, port=bound_port(listener))
        url = f"{'https' if pair is not None else 'http'}://{shown}/"
        if pair is None:
            self.stdout.write(
                f"careloop is serving plain HTTP at {url}: TLS is terminated by the proxy "
                "in front (CARELOOP_BEHIND_PROXY)."
            )
        else:
            self.stdout.write(f"careloop is serving at {url}")
        self.stdout.flush()
        # Workers fork from this process; a connection opened by checks must not be shared.
        connections.close_all()
        CareloopServer(
            listener=listener, options=ServerOptions(workers=options["workers"], tls=pair)
        ).run()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value
