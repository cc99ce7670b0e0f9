"""Gunicorn embedded as careloop's web server (`careloop serve`).

Gunicorn is driven through `BaseApplication`, so no gunicorn command line or config
file is read: everything comes from careloop's settings and `careloop serve` options.
Workers are `gthread` so TLS connections are kept alive between requests (a sync
worker would pay a full handshake per request).
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication

from careloop.core.server.tls import CertificatePair, TLSError, server_context

log = logging.getLogger(__name__)

# No query string (`%(q)s`, or `%(r)s` which includes it), no referrer and no user
# agent: a query string or a referring URL could carry PHI by mistake, and the design
# rule is that nothing of PHI class I reaches a log line. Method, path, status, bytes
# and duration are enough to operate the service.
ACCESS_LOG_FORMAT = '%(t)s %(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
THREADS_PER_WORKER = 4
# SIGTERM lets requests in flight finish for this long; `careloop run` waits longer.
GRACEFUL_SECONDS = 10


@dataclass(frozen=True)
class ServerOptions:
    workers: int
    tls: CertificatePair | None  # None only behind a TLS-terminating proxy


class CareloopServer(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """Serves `careloop.wsgi:application` on an already bound, listening socket."""

    def __init__(self, *, listener: socket.socket, options: ServerOptions) -> None:
        self._options = options
        self._context: ssl.SSLContext | None = None
        # Gunicorn adopts the descriptor (fd://N) and closes it after duplicating it.
        self._fd = listener.detach()
        super().__init__()

    def load_config(self) -> None:
        options = self._options
        settings: dict[str, Any] = {
            "bind": [f"fd://{self._fd}"],
            "workers": options.workers,
            "worker_class": "gthread",
            "threads": THREADS_PER_WORKER,
            "graceful_timeout": GRACEFUL_SECONDS,
            "preload_app": True,
            "proc_name": "careloop-web",
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "errorlog": "-",
            "loglevel": "info",
        }
        if options.tls is not None:
            self._load_context(options.tls)
            settings |= {
                # Gunicorn wraps sockets only when a certfile is set; the context itself
                # comes from the `ssl_context` hook, built once and reused.
                "certfile": str(options.tls.cert_file),
                "keyfile": str(options.tls.key_file),
                "ssl_context": self._ssl_context_hook(),
            }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        from careloop.wsgi import application

        return application

    def _load_context(self, pair: CertificatePair) -> None:
        # Called at start and on SIGHUP: a renewed certificate is picked up by a reload.
        # A broken file on reload keeps the running certificate rather than stop serving.
        try:
            self._context = server_context(cert_file=pair.cert_file, key_file=pair.key_file)
        except TLSError as error:
            if self._context is None:
                raise
            log.error("Keeping the current TLS certificate: %s", error)

    def _ssl_context_hook(self) -> Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
        # Gunicorn calls this for every accepted connection; return the one context
        # rather than re-reading the key per connection as its default factory does.
        def ssl_context(
            config: Any, default_factory: Callable[[], ssl.SSLContext]
        ) -> ssl.SSLContext:
            assert self._context is not None  # noqa: S101 - set in load_config before use
            return self._context

        return ssl_context
