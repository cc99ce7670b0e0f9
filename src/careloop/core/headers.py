"""Security headers that Django's SecurityMiddleware does not set: CSP with a nonce, and
Permissions-Policy.

HSTS, nosniff, Referrer-Policy and Cross-Origin-Opener-Policy come from SecurityMiddleware
(settings `SECURE_*`); this middleware adds the rest. The policy is one constant: careloop
loads every script, style, font and image from itself, so nothing here is configurable.

Each request gets a fresh nonce (`request.csp_nonce`) that templates put on their
`<script src>` tags. careloop has no inline script at all, and the policy keeps it that
way: a script tag injected through a rendering bug would carry no valid nonce and is
refused, as is any inline event handler or `eval`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final

from django.http import HttpRequest, HttpResponse

# One line per directive, for the review; joined with "; " in the header.
_POLICY: Final = (
    "default-src 'self'",
    "script-src 'self' 'nonce-{nonce}'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
)
CSP_TEMPLATE: Final = "; ".join(_POLICY)

# Powerful browser features no careloop page uses. Telehealth will need camera and
# microphone on its own page some day; it can open them there (self) and nowhere else.
PERMISSIONS_POLICY: Final = ", ".join(
    f"{feature}=()"
    for feature in (
        "camera",
        "microphone",
        "geolocation",
        "payment",
        "usb",
        "serial",
        "display-capture",
    )
)


def csp_nonce() -> str:
    """128 random bits, base64url: unguessable per response, and safe inside an attribute."""
    return secrets.token_urlsafe(16)


class SecurityHeadersMiddleware:
    """Sets `request.csp_nonce`, then the CSP and Permissions-Policy headers on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = csp_nonce()
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        # A view that set its own policy (none does today) knows better than the default.
        response.headers.setdefault("Content-Security-Policy", CSP_TEMPLATE.format(nonce=nonce))
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
