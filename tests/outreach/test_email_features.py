"""E-mail beyond sending: calendar invitations, unsubscribing, bounces and complaints.

Mail goes through the dispatcher to the real aiosmtpd server (STARTTLS), and the tests
read what arrived; bounce and complaint reports are built with the email package the
way receiving servers and mailbox providers write them.
"""

from __future__ import annotations

import datetime
import io
import mailbox
from email.message import EmailMessage
from email.message import Message as MimeMessage
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ChannelOptIn,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
    ContentClass,
    Purpose,
)
from careloop.core import clock
from careloop.outreach.bounces import Outcome, bounce_process
from careloop.outreach.dispatch import dispatch_due
from careloop.outreach.message_tokens import verp_message_id
from careloop.outreach.models import InboundMessage, Message, MessageStatus
from careloop.outreach.outbox import About, Rendered, message_enqueue
from careloop.patients.models import ContactPoint, Patient, TimelineEvent
from careloop.scheduling.models import Appointment, Provider
from tests.outreach.conftest import EMAIL, reachable_patient
from tests.outreach.smtp_server import Arrived, Inbox
from tests.patients.builders import add_appointment, make_location, make_provider

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vendors")]

PUBLIC = "https://careloop.example"
BOUNCE_DOMAIN = "bounces.riverbend.example"
# Thursday 11 June 2026, 10:30 in Chicago (the clinic's zone): 15:30 UTC.
VISIT = datetime.datetime(2026, 6, 11, 15, 30, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def _public_origin(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.SMTP_BOUNCE_DOMAIN = BOUNCE_DOMAIN


def visit(patient: Patient) -> Appointment:
    provider = Provider.objects.first() or make_provider(make_location())
    return add_appointment(patient, provider, VISIT)


def email(patient: Patient, purpose: Purpose = Purpose.APPOINTMENT, **about: Any) -> Message:
    return message_enqueue(
        patient=patient,
        channel=Channel.EMAIL,
        purpose=purpose,
        content_class=ContentClass.LOGISTICS,
        template_id="visit-reminder",
        template_version=1,
        rendered=Rendered(subject="Your visit", body="Dear Rosa,\n\nSee you on Thursday."),
        about=About(**about),
    )


def sent(patient: Patient, inbox: Inbox, purpose: Purpose = Purpose.SURVEY) -> Arrived:
    email(patient, purpose)
    assert dispatch_due() == {"sent": 1}
    return inbox.arrived[-1]


def calendar_part(arrived: Arrived) -> MimeMessage:
    [part] = [p for p in arrived.message.walk() if p.get_content_type() == "text/calendar"]
    return part


def ics_properties(data: bytes) -> dict[str, str]:
    """Unfold the content lines (RFC 5545 3.1) and map each property name to its line."""
    text = data.decode()
    assert "\r\n" in text and all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    lines = text.replace("\r\n ", "").split("\r\n")
    return {line.split(":")[0].split(";")[0]: line for line in lines if line}


def test_an_appointment_email_carries_an_ics_invitation_with_logistics_only(
    smtp_tls: Inbox,
) -> None:
    patient = reachable_patient()
    appointment = visit(patient)
    email(patient, appointment=appointment)
    assert dispatch_due() == {"sent": 1}

    mail = smtp_tls.arrived[0].message
    assert mail.get_content_type() == "multipart/mixed"
    part = calendar_part(smtp_tls.arrived[0])
    assert part.get_param("method") == "REQUEST"
    assert part.get_filename() == "appointment.ics"
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    ics = ics_properties(data)
    assert ics["METHOD"] == "METHOD:REQUEST"
    assert ics["UID"] == f"UID:appointment-{appointment.pk}@riverbend.example"
    assert ics["DTSTART"] == "DTSTART:20260611T153000Z"
    assert ics["DTEND"] == "DTEND:20260611T155000Z"
    assert ics["LOCATION"] == "LOCATION:Riverbend Main Clinic\\, 100 River Rd\\, Springfield IL"
    assert ics["SUMMARY"] == "SUMMARY:Appointment at Riverbend Family Health"
    assert ics["ATTENDEE"].endswith(f"mailto:{EMAIL}")
    for revealing in (b"Rosa", b"Delgado", b"Chen", b"Follow", b"follow-up"):
        assert revealing not in data, revealing
    assert "List-Unsubscribe" not in mail, "appointment mail is transactional"


def test_every_reminder_for_one_appointment_updates_the_same_calendar_entry(
    smtp_tls: Inbox,
) -> None:
    patient = reachable_patient()
    appointment = visit(patient)
    email(patient, appointment=appointment)
    dispatch_due()
    with clock.frozen(clock.now() + datetime.timedelta(days=1)):
        email(patient, appointment=appointment)
        dispatch_due()
    first, second = (
        ics_properties(calendar_part(a).get_payload(decode=True))  # type: ignore[arg-type]
        for a in smtp_tls.arrived
    )
    assert first["UID"] == second["UID"]
    assert int(second["SEQUENCE"].split(":")[1]) > int(first["SEQUENCE"].split(":")[1])


def test_mail_without_an_appointment_has_no_invitation(smtp_tls: Inbox) -> None:
    arrived = sent(reachable_patient(), smtp_tls, Purpose.APPOINTMENT)
    assert not [p for p in arrived.message.walk() if p.get_content_type() == "text/calendar"]


def unsubscribe_links(arrived: Arrived) -> tuple[str, str]:
    header = str(arrived.message["List-Unsubscribe"])
    https, mailto = (link.strip().strip("<>") for link in header.split(","))
    return https, mailto


def test_mail_that_is_not_about_an_appointment_offers_one_click_unsubscribe(
    smtp_tls: Inbox,
) -> None:
    arrived = sent(reachable_patient(), smtp_tls, Purpose.CARE_REMINDER)
    https, mailto = unsubscribe_links(arrived)
    assert https.startswith(f"{PUBLIC}/webhooks/email/unsubscribe?t=")
    assert mailto.startswith(f"mailto:bounces@{BOUNCE_DOMAIN}?subject=unsubscribe%20")
    assert arrived.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    raw = dict(arrived.message.raw_items())["List-Unsubscribe"]
    assert "=?" not in raw and https in raw, "on the wire as written, not RFC 2047 encoded"
    for link in (https, mailto):
        assert "rosa" not in link.lower() and "delgado" not in link.lower()


def test_a_one_click_unsubscribe_records_an_email_opt_out_for_that_purpose(
    smtp_tls: Inbox,
) -> None:
    patient = reachable_patient()
    https, _ = unsubscribe_links(sent(patient, smtp_tls, Purpose.SURVEY))
    url = urlsplit(https)

    response = Client().post(
        f"{url.path}?{url.query}", {"List-Unsubscribe": "One-Click"}, secure=True
    )

    assert response.status_code == 200
    assert b"You are unsubscribed" in response.content
    opt_in = ChannelOptIn.objects.get(patient=patient, channel="email", purpose="survey")
    assert opt_in.opted_in is False
    record = ConsentRecord.objects.get(patient=patient, kind=ConsentKind.EMAIL)
    assert (record.scope, record.status) == ("survey", ConsentStatus.REVOKED)
    assert record.capture_method == CaptureMethod.EMAIL_LINK
    assert "one-click" in (record.note or "")
    later = email(patient, Purpose.SURVEY)
    assert (later.status, later.scheduled_reason) == ("withheld", "opted_out")
    assert email(patient, Purpose.APPOINTMENT).status == MessageStatus.QUEUED
    Client().post(f"{url.path}?{url.query}", {"List-Unsubscribe": "One-Click"}, secure=True)
    assert ConsentRecord.objects.filter(patient=patient, kind="comm_email").count() == 1


def test_the_unsubscribe_page_asks_first_and_refuses_a_tampered_link(
    smtp_tls: Inbox,
) -> None:
    patient = reachable_patient()
    https, _ = unsubscribe_links(sent(patient, smtp_tls, Purpose.SURVEY))
    url = urlsplit(https)

    page = Client().get(f"{url.path}?{url.query}", secure=True)
    assert page.status_code == 200
    assert b"Stop these e-mails?" in page.content and b"about surveys" in page.content
    assert b"Rosa" not in page.content and EMAIL.encode() not in page.content
    assert not ChannelOptIn.objects.filter(patient=patient).exists()

    token = parse_qs(url.query)["t"][0]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert Client().get(f"{url.path}?t={forged}", secure=True).status_code == 403
    assert Client().post(f"{url.path}?t={forged}", secure=True).status_code == 403
    assert Client().post(url.path, secure=True).status_code == 403

    done = Client().post(f"{url.path}?{url.query}", secure=True)
    assert done.status_code == 200
    assert ChannelOptIn.objects.get(patient=patient).opted_in is False


def test_each_message_goes_out_with_its_own_bounce_address(smtp_tls: Inbox) -> None:
    arrived = sent(reachable_patient(), smtp_tls, Purpose.APPOINTMENT)
    message = Message.objects.get()
    assert arrived.sender.startswith("bounces+") and arrived.sender.endswith(f"@{BOUNCE_DOMAIN}")
    assert len(arrived.sender.split("@")[0]) <= 64
    assert verp_message_id(arrived.sender) == message.id
    assert verp_message_id(arrived.sender.upper()) == message.id, "case may change in transit"
    forged = arrived.sender.replace(message.id.hex, "0" * 32)
    assert verp_message_id(forged) is None


# --- reports as receiving servers write them ----------------------------------------------


def dsn(arrived: Arrived, *, status: str, action: str = "failed", verp: bool = True) -> bytes:
    """An RFC 3464 delivery status notification for `arrived`."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.example.net"
    report["To"] = arrived.sender if verp else "care@riverbend.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("Your message could not be delivered to one or more recipients."))
    per_message, per_recipient = MimeMessage(), MimeMessage()
    per_message["Reporting-MTA"] = "dns; mx.example.net"
    per_recipient["Final-Recipient"] = f"rfc822; {EMAIL}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Diagnostic-Code"] = f"smtp; 550 5.1.1 <{EMAIL}>: Recipient address rejected"
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    headers = "".join(
        f"{name}: {arrived.message[name]}\n" for name in ("Message-ID", "From", "To", "Subject")
    )
    report.attach(MIMEText(headers, "rfc822-headers"))
    return report.as_bytes()


def arf(arrived: Arrived) -> bytes:
    """An RFC 5965 abuse report (a "this is spam" click) returning the whole message."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "feedback@mailbox-provider.example"
    report["To"] = f"abuse@{BOUNCE_DOMAIN}"
    report["Subject"] = "Complaint about message"
    report.attach(MIMEText("This is an email abuse report."))
    feedback = MIMEBase("message", "feedback-report")
    feedback.set_payload(
        f"Feedback-Type: abuse\nUser-Agent: ExampleFBL/1.0\nVersion: 1\n"
        f"Original-Mail-From: <{arrived.sender}>\nOriginal-Rcpt-To: <{EMAIL}>\n"
    )
    report.attach(feedback)
    report.attach(MIMEMessage(arrived.message))
    return report.as_bytes()


def test_a_hard_bounce_marks_the_message_and_stops_the_address_once(smtp_tls: Inbox) -> None:
    patient = reachable_patient()
    arrived = sent(patient, smtp_tls, Purpose.APPOINTMENT)
    report = dsn(arrived, status="5.1.1")

    assert bounce_process(report) == Outcome.HARD_BOUNCE
    assert bounce_process(report) == Outcome.NOTHING_TO_DO

    message = Message.objects.get()
    assert (message.status, message.status_detail) == ("bounced", "hard bounce 5.1.1")
    contact = ContactPoint.objects.get(patient=patient, system="email")
    assert contact.can_email is False and contact.value == EMAIL, "kept for staff to fix"
    later = email(patient)
    assert (later.status, later.scheduled_reason) == ("withheld", "no_verified_address")
    summaries = list(
        TimelineEvent.objects.filter(patient=patient).values_list("summary", flat=True)
    )
    assert summaries.count("E-mail address no longer used: hard bounce 5.1.1") == 1
    assert summaries.count("E-mail appointments message bounced") == 1
    assert "5.1.1" in str(message.status_detail) and EMAIL not in str(message.status_detail)


def test_a_soft_bounce_is_a_note_and_the_address_stays(smtp_tls: Inbox) -> None:
    patient = reachable_patient()
    arrived = sent(patient, smtp_tls, Purpose.APPOINTMENT)

    assert bounce_process(dsn(arrived, status="4.2.2", action="delayed")) == Outcome.SOFT_BOUNCE
    assert bounce_process(dsn(arrived, status="4.2.2", action="delayed")) == Outcome.NOTHING_TO_DO

    message = Message.objects.get()
    assert (message.status, message.status_detail) == ("sent", "soft bounce 4.2.2")
    assert ContactPoint.objects.get(patient=patient, system="email").can_email is True


def test_a_bounce_without_the_verp_address_is_matched_by_message_id(smtp_tls: Inbox) -> None:
    arrived = sent(reachable_patient(), smtp_tls, Purpose.APPOINTMENT)
    assert bounce_process(dsn(arrived, status="5.1.1", verp=False)) == Outcome.HARD_BOUNCE
    assert Message.objects.get().status == MessageStatus.BOUNCED


def test_a_report_about_no_message_of_ours_changes_nothing(smtp_tls: Inbox) -> None:
    arrived = sent(reachable_patient(), smtp_tls, Purpose.APPOINTMENT)
    arrived.sender = arrived.sender.replace(arrived.sender[8:40], "f" * 32)  # a forged VERP
    del arrived.message["Message-ID"]
    arrived.message["Message-ID"] = "<someone-else@example.net>"
    assert bounce_process(dsn(arrived, status="5.1.1")) == Outcome.UNKNOWN_MESSAGE
    assert Message.objects.get().status == MessageStatus.SENT


def test_a_spam_complaint_opts_the_patient_out_of_that_purpose_once(smtp_tls: Inbox) -> None:
    patient = reachable_patient()
    arrived = sent(patient, smtp_tls, Purpose.CARE_REMINDER)

    assert bounce_process(arf(arrived)) == Outcome.COMPLAINT
    assert bounce_process(arf(arrived)) == Outcome.NOTHING_TO_DO

    record = ConsentRecord.objects.get(patient=patient, kind=ConsentKind.EMAIL)
    assert (record.scope, record.status) == ("care_reminder", "revoked")
    assert InboundMessage.objects.get().channel == "email"
    later = email(patient, Purpose.CARE_REMINDER)
    assert later.scheduled_reason == "opted_out"
    assert Message.objects.filter(status="sent").count() == 1, "a complaint is not a bounce"


def test_a_mailed_unsubscribe_request_opts_out(smtp_tls: Inbox) -> None:
    patient = reachable_patient()
    _, mailto = unsubscribe_links(sent(patient, smtp_tls, Purpose.SURVEY))
    request = EmailMessage()
    request["From"] = EMAIL
    request["To"] = f"bounces@{BOUNCE_DOMAIN}"
    request["Subject"] = unquote(parse_qs(urlsplit(mailto).query)["subject"][0])
    request.set_content("")

    assert bounce_process(request.as_bytes()) == Outcome.UNSUBSCRIBE
    assert ChannelOptIn.objects.get(patient=patient, purpose="survey").opted_in is False


def test_the_bounces_command_processes_a_maildir_and_moves_what_it_handled(
    smtp_tls: Inbox, tmp_path: Path
) -> None:
    patient = reachable_patient()
    bounced = sent(patient, smtp_tls, Purpose.APPOINTMENT)
    complained = sent(patient, smtp_tls, Purpose.SURVEY)
    folder = tmp_path / "bounces"
    box = mailbox.Maildir(folder, create=True)
    box.add(dsn(bounced, status="5.1.1"))
    box.add(arf(complained))
    vacation = EmailMessage()
    vacation["Subject"] = "Out of office"
    vacation.set_content("I am away until Monday.")
    box.add(vacation.as_bytes())

    out = io.StringIO()
    call_command("outreach", "bounces", "--maildir", str(folder), stdout=out)

    lines = dict(line.split() for line in out.getvalue().splitlines())
    assert lines == {"complaint": "1", "hard_bounce": "1", "not_a_report": "1"}
    assert EMAIL not in out.getvalue()
    assert len(box) == 0
    assert len(box.get_folder("handled")) == 2
    assert len(box.get_folder("unhandled")) == 1
    assert Message.objects.filter(status="bounced").count() == 1
    again = io.StringIO()
    call_command("outreach", "bounces", "--maildir", str(folder), stdout=again)
    assert again.getvalue().strip() == "no mail waiting"
