"""Signing staff in, for tests: through the real pages (`sign_in`), or straight to a
verified session for the many tests that are not about sign-in (`force_verified_login`).

Both give the user a confirmed TOTP device (`totp_device`); `totp_code` gives the next
code the server will accept for it. Codes are single-use, so two sign-ins within one
30-second step get codes for successive steps, and a third waits for the clock.
"""

from __future__ import annotations

import time

from django.http.response import HttpResponseBase
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import hotp
from django_otp.plugins.otp_totp.models import TOTPDevice

from careloop.security.models import User
from tests.patients.builders import PASSWORD


def totp_device(user: User) -> TOTPDevice:
    """The user's confirmed device, created on first use."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test phone", confirmed=True)
    return device


def totp_code(device: TOTPDevice) -> str:
    """The next code the server will accept from `device`: not yet used, within tolerance."""
    while True:
        device.refresh_from_db()
        now_step = (int(time.time()) - device.t0) // device.step + device.drift
        counter = max(now_step, device.last_t + 1)
        if counter <= now_step + device.tolerance:
            return f"{hotp(device.bin_key, counter, digits=device.digits):0{device.digits}d}"
        # Every acceptable code is used up: wait for the next time step.
        time.sleep(device.step - (time.time() - device.t0) % device.step + 0.05)


def totp_code_now(key: bytes, *, step: int = 30, digits: int = 6) -> str:
    """The current code for a raw key, without the database (e.g. inside Playwright,
    where the ORM may not run); right for a device that has not been used yet."""
    return f"{hotp(key, int(time.time()) // step, digits=digits):0{digits}d}"


def force_verified_login(client: Client, user: User) -> Client:
    """Signed in with both factors, without going through the pages."""
    device = totp_device(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def sign_in(
    client: Client, user: User, *, password: str = PASSWORD, next_url: str = ""
) -> HttpResponseBase:
    """Password, then a TOTP code, through the real pages; the last response."""
    device = totp_device(user)
    data = {"username": user.username, "password": password}
    if next_url:
        data["next"] = next_url
    response = client.post("/accounts/login/", data, secure=True)
    assert response.status_code == 302, response.content.decode()[:500]
    step_two = response["Location"]
    assert step_two.startswith("/accounts/mfa/verify/"), step_two
    return client.post(step_two, {"code": totp_code(device)}, secure=True)
