"""Signed SMS webhooks: the provider's signature is the only credential they take.

`X-Twilio-Signature` is base64(HMAC-SHA1(auth token, URL + each POST parameter's name
and value, sorted by name)). The URL is the one the provider called: careloop's public
base (settings.SMS_WEBHOOK_BASE_URL) and the path, since behind a proxy the request's
own host and scheme may differ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from django.conf import settings
from django.http import HttpRequest, QueryDict


def twilio_signature(*, url: str, params: QueryDict | dict[str, str], token: str) -> str:
    if isinstance(params, QueryDict):
        pairs = [(key, value) for key in sorted(params) for value in params.getlist(key)]
    else:
        pairs = sorted(params.items())
    payload = url + "".join(key + value for key, value in pairs)
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def called_url(request: HttpRequest) -> str:
    base = settings.SMS_WEBHOOK_BASE_URL
    if base:
        return base.rstrip("/") + request.get_full_path()
    return request.build_absolute_uri()


def signature_valid(request: HttpRequest) -> bool:
    """The request came from our provider account (a configured token is required)."""
    token = settings.SMS_AUTH_TOKEN
    given = request.headers.get("X-Twilio-Signature", "")
    if not token or not given:
        return False
    expected = twilio_signature(url=called_url(request), params=request.POST, token=token)
    if not hmac.compare_digest(expected, given):
        return False
    account = request.POST.get("AccountSid", "")
    return not account or hmac.compare_digest(account, settings.SMS_ACCOUNT_SID)
