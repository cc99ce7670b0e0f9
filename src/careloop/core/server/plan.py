"""Which certificate the server uses, decided from options and settings in one place.

- A certificate given (`--cert/--key`, or CARELOOP_TLS_CERT/CARELOOP_TLS_KEY): use it.
- None given, development: the embedded self-signed localhost certificate in TLS_DIR.
- None given, production, CARELOOP_BEHIND_PROXY on: plain HTTP, because a proxy or load
  balancer in front terminates TLS (Django trusts its X-Forwarded-Proto header).
- None given, production, not behind a proxy: refuse to start. careloop is never
  served over plain HTTP to browsers, and a self-signed certificate is no production
  answer.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from careloop.core.server.tls import CertificatePair, TLSError, self_signed_ensure


def behind_proxy() -> bool:
    return bool(settings.BEHIND_PROXY)


def certificate_choose(*, cert: str | None, key: str | None) -> CertificatePair | None:
    """The certificate to serve with, or None for plain HTTP behind a proxy."""
    cert = cert or settings.TLS_CERT_FILE
    key = key or settings.TLS_KEY_FILE
    if cert and key:
        return CertificatePair(cert_file=Path(cert), key_file=Path(key))
    if cert or key:
        raise TLSError(
            "give both a certificate and its key (--cert PEM --key PEM, or "
            "CARELOOP_TLS_CERT and CARELOOP_TLS_KEY), not only one."
        )
    if not settings.PRODUCTION:
        return self_signed_ensure(directory=Path(settings.TLS_DIR))
    if behind_proxy():
        return None
    raise TLSError(
        "no TLS certificate is configured. In production set CARELOOP_TLS_CERT and "
        "CARELOOP_TLS_KEY (or pass --cert and --key), or set CARELOOP_BEHIND_PROXY=true "
        "when a TLS-terminating proxy is in front."
    )
