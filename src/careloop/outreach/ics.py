"""An appointment as an iCalendar invitation (RFC 5545, METHOD:REQUEST per RFC 5546).

Logistics only: when and where, and the practice's phone. No visit type, provider or
reason, which can say more about a patient's health than a time and a place; the
e-mail it travels with may be read on a shared screen or forwarded.

The UID is the appointment's, so every reminder for one visit updates one calendar
entry instead of adding another. SEQUENCE is the minute the invitation was made: it
only grows, so a calendar takes the newest reminder (a rescheduled time) as the
revision to keep.
"""

from __future__ import annotations

import datetime

from django.conf import settings

from careloop.core.clock import now
from careloop.scheduling.models import Appointment

# RFC 5545 3.1: content lines are folded at 75 octets.
_FOLD_OCTETS = 75


def _text(value: str) -> str:
    """A TEXT value, escaped (RFC 5545 3.3.11)."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def _fold(line: str) -> str:
    """One content line, folded into CRLF-joined pieces of at most 75 octets."""
    encoded = line.encode()
    pieces: list[bytes] = []
    limit = _FOLD_OCTETS
    while len(encoded) > limit:
        cut = limit
        while cut > 0 and (encoded[cut] & 0xC0) == 0x80:  # never split a UTF-8 character
            cut -= 1
        pieces.append(encoded[:cut])
        encoded = encoded[cut:]
        limit = _FOLD_OCTETS - 1  # continuation lines start with a space
    pieces.append(encoded)
    return "\r\n ".join(piece.decode() for piece in pieces)


def appointment_uid(appointment: Appointment) -> str:
    domain = str(settings.SMTP_FROM).rpartition("@")[2] or "careloop.invalid"
    return f"appointment-{appointment.pk}@{domain}"


def appointment_ics(appointment: Appointment, *, attendee: str) -> bytes:
    """The invitation for one appointment, to `attendee` (the e-mail's recipient)."""
    location = appointment.location
    practice = str(settings.PRACTICE_NAME)
    where = ", ".join(part for part in (location.name, location.address) if part)
    stamp = now()
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//careloop//outreach//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:{appointment_uid(appointment)}",
        f"SEQUENCE:{int(stamp.timestamp()) // 60}",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART:{_utc(appointment.start)}",
        f"DTEND:{_utc(appointment.end)}",
        f"SUMMARY:{_text(f'Appointment at {practice}')}",
        f"LOCATION:{_text(where)}",
        f"ORGANIZER;CN={_text(practice)}:mailto:{settings.SMTP_FROM}",
        f"ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:mailto:{attendee}",
        "STATUS:CONFIRMED",
        "TRANSP:OPAQUE",
    ]
    if location.phone:
        lines.append(f"DESCRIPTION:{_text(f'To change this appointment call {location.phone}.')}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(_fold(line) for line in lines) + "\r\n").encode()
