"""The second factor: TOTP devices (django-otp), enrolment and the QR code that carries them.

A staff user has at most one confirmed TOTP device. Enrolment creates an unconfirmed
one, shows its secret (as a QR code drawn here, never by an outside service, and as
text) and confirms it when the user types a code from it. A code is accepted once:
django-otp keeps the last accepted time step (`last_t`) on the device and refuses any
code at or before it, and `django_otp.verify_token` checks under a row lock so two
requests carrying the same code cannot both pass.
"""

from __future__ import annotations

import base64
import io
import re

import qrcode
import qrcode.image.svg
from django_otp import verify_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from careloop.security.models import User

DEVICE_NAME = "Authenticator app"
_SVG_SIZE = re.compile(r'<svg width="[^"]*" height="[^"]*"')


def mfa_device(user: User) -> TOTPDevice | None:
    """The user's confirmed TOTP device, if they have enrolled."""
    device: TOTPDevice | None = (
        TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()
    )
    return device


def mfa_pending_device(user: User) -> TOTPDevice:
    """The unconfirmed device enrolment shows; the same one until it is confirmed."""
    device: TOTPDevice | None = (
        TOTPDevice.objects.filter(user=user, confirmed=False).order_by("id").first()
    )
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    return device


def mfa_code_accepted(*, user: User, device: TOTPDevice, code: str) -> bool:
    """Is `code` a fresh, unused code of `device`? Accepting it uses it up."""
    code = "".join(code.split())
    if not code.isdigit():
        return False
    return verify_token(user, device.persistent_id, code) is not None


def totp_secret(device: TOTPDevice) -> str:
    """The secret as people type it into an authenticator app: base32 in groups of four."""
    text = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def totp_uri(device: TOTPDevice) -> str:
    return str(device.config_url)


def qr_svg(data: str, *, pixels: int = 224) -> str:
    """An inline SVG QR code, sized in pixels, for a page (no XML prolog, no style)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    svg = str(image.to_string(encoding="unicode")).split("?>", 1)[-1].strip()
    return _SVG_SIZE.sub(
        f'<svg width="{pixels}" height="{pixels}" role="img" aria-label="QR code"', svg, count=1
    )


def qr_terminal(data: str) -> str:
    """The QR code as text for a terminal, two modules per character row."""
    code = qrcode.QRCode(border=2)
    code.add_data(data)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()
