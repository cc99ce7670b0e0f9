"""Real SMTP servers on loopback (aiosmtpd): one that offers STARTTLS with a certificate
made for the test, one that offers only plaintext. What arrives is kept to be read."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Arrived:
    sender: str
    recipients: list[str]
    message: EmailMessage
    over_tls: bool


@dataclass
class Inbox:
    arrived: list[Arrived] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.arrived.append(
            Arrived(
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                message=parsed,  # type: ignore[arg-type]
                over_tls=session.ssl is not None,
            )
        )
        return "250 OK"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "careloop test smtp")])
    start = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# aiosmtpd logs every envelope address at INFO: the test server keeps them to itself.
logging.getLogger("mail.log").setLevel(logging.WARNING)


def start_smtp(
    *, tls: tuple[Path, Path] | None, port: int | None = None, inbox: Inbox | None = None
) -> tuple[Controller, Inbox]:
    """A server on `port` (a free one by default), keeping mail in `inbox` (a new one by
    default: pass the old one to bring a stopped server back as it was)."""
    inbox = inbox if inbox is not None else Inbox()
    extra: dict[str, Any] = {}
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        extra = {"tls_context": context, "require_starttls": True}
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port if port is not None else free_port(), **extra
    )
    controller.start()
    return controller, inbox
