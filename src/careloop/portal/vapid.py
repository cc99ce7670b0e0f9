"""The practice's VAPID key pair (RFC 8292): how browsers' push services recognise us.

A browser subscribes with the public key (the "application server key") and its push
service accepts only messages signed with the matching private key, so every process
that sends push must hold the same key: production takes it from the environment
(`CARELOOP_VAPID_PRIVATE_KEY`, base64url of the 32-byte P-256 scalar, the format web
push tools print); the embedded install derives it from a local secret (settings).

Imported by settings, so it must not import Django.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# The order of the P-256 group: a private key is a scalar in [1, n - 1].
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Unpadded (or padded) base64url; `ValueError` for anything else."""
    if not text or any(c not in _B64URL for c in text.rstrip("=")):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


def vapid_private_from_seed(seed_hex: str) -> str:
    """A private key (base64url) from 32 random bytes in hex (a local secret).

    Reduced into [1, n - 1] so every seed gives a valid scalar, the same one each time.
    """
    scalar = int(seed_hex, 16) % (P256_ORDER - 1) + 1
    return b64url_encode(scalar.to_bytes(32, "big"))


def vapid_private_key(private_key: str) -> ec.EllipticCurvePrivateKey:
    """The key object for a base64url private scalar; `ValueError` when it is not one."""
    raw = b64url_decode(private_key)
    if len(raw) != 32:
        raise ValueError("a VAPID private key is 32 bytes, base64url")
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


def vapid_public_key(private_key: str) -> str:
    """The application server key browsers subscribe with: the uncompressed point."""
    point = (
        vapid_private_key(private_key)
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return b64url_encode(point)
