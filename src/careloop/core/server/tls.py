"""TLS for careloop's own server: the server-side SSLContext and the embedded self-signed cert.

The context allows TLS 1.2 and 1.3 only. For TLS 1.2 it offers only ECDHE key exchange
with AES-GCM or ChaCha20-Poly1305 (forward secrecy, AEAD); every TLS 1.3 suite already
has both properties, and OpenSSL configures those separately from `set_ciphers`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
SELF_SIGNED_DAYS = 365
# Renew the self-signed certificate this long before it expires, so a browser never
# meets an expired one on a demo that has been running for a year.
RENEW_BEFORE = dt.timedelta(days=14)
CERT_NAME = "localhost.crt"
KEY_NAME = "localhost.key"


class TLSError(Exception):
    """A certificate or key cannot be used; the message says which file and what to do."""


@dataclass(frozen=True)
class CertificatePair:
    cert_file: Path
    key_file: Path


def server_context(*, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The server's SSLContext, with the certificate loaded; raises TLSError on a bad file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(TLS12_CIPHERS)
    # Compression enables CRIME; renegotiation is a DoS lever and nothing here needs it.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_SINGLE_ECDH_USE | ssl.OP_SINGLE_DH_USE
    context.set_alpn_protocols(["http/1.1"])
    for path, what in ((cert_file, "certificate"), (key_file, "private key")):
        _require_readable(path=path, what=what)
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except ssl.SSLError as error:
        reason = (error.reason or "").lower().replace("_", " ") or "unreadable PEM"
        raise TLSError(
            f"cannot use the certificate {cert_file} with the key {key_file} ({reason}). "
            "Give a PEM certificate chain and its matching, unencrypted PEM private key."
        ) from None
    return context


def _require_readable(*, path: Path, what: str) -> None:
    try:
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise TLSError(f"the TLS {what} file {path} does not exist. Check the path.") from None
    except IsADirectoryError:
        raise TLSError(f"the TLS {what} path {path} is a directory, not a PEM file.") from None
    except PermissionError:
        raise TLSError(
            f"the TLS {what} file {path} is not readable by this user. Fix its permissions."
        ) from None


def self_signed_ensure(*, directory: Path) -> CertificatePair:
    """The embedded install's localhost certificate in `directory`, created on first use.

    It is reused on later starts (so a browser exception, once granted, keeps working)
    and replaced only when it is unreadable or close to expiry.
    """
    pair = CertificatePair(cert_file=directory / CERT_NAME, key_file=directory / KEY_NAME)
    if _still_good(pair):
        return pair
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    cert_pem = _localhost_certificate(key=key).public_bytes(serialization.Encoding.PEM)
    # Key first, certificate last: _still_good needs both, so a reader never pairs a
    # new certificate with an old key.
    _write_private(path=pair.key_file, data=key_pem, mode=0o600)
    _write_private(path=pair.cert_file, data=cert_pem, mode=0o644)
    return pair


def _still_good(pair: CertificatePair) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(pair.cert_file.read_bytes())
        if not pair.key_file.is_file():
            return False
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - RENEW_BEFORE > dt.datetime.now(tz=dt.UTC)


def _localhost_certificate(*, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "careloop (self-signed, local only)"),
        ]
    )
    now = dt.datetime.now(tz=dt.UTC)
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(san, critical=False)
        # An end-entity certificate: browsers refuse a CA certificate used as a server's.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _write_private(*, path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` atomically, created with `mode` (never briefly world-readable)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
