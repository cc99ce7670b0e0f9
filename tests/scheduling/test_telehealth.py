"""Telehealth: the video link is handed out only to the consenting patient, only around
the visit, and only for a telehealth visit; each ask is audited."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from careloop.consent.ledger import consent_record
from careloop.consent.models import CaptureMethod, ConsentKind, ConsentStatus
from careloop.core import clock
from careloop.core.errors import NotFound
from careloop.scheduling.booking import appointment_book, appointment_cancel
from careloop.scheduling.models import Appointment, AppointmentType
from careloop.scheduling.telehealth import JoinRefusal, telehealth_join, telehealth_status
from careloop.security.models import AuditEvent
from tests.patients.builders import make_patient
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, Practice, local, make_practice

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)


@pytest.fixture
def practice() -> Iterator[Practice]:
    with clock.frozen(AT):
        yield make_practice()


def _video_visit(practice: Practice, *, consent: bool = True) -> Appointment:
    video = AppointmentType.objects.create(
        code="video", name="Video visit", minutes=30, telehealth=True
    )
    with clock.frozen(AT):
        if consent:
            consent_record(
                patient=practice.patient,
                kind=ConsentKind.TELEHEALTH,
                status=ConsentStatus.GRANTED,
                capture_method=CaptureMethod.PORTAL_ESIGNATURE,
            )
        return appointment_book(
            actor=practice.desk,
            patient=practice.patient,
            appointment_type=video,
            provider=practice.doctor,
            location=practice.clinic,
            start=NINE,
        )


def _join(practice: Practice, visit: Appointment, at: datetime.datetime) -> Any:
    return telehealth_join(patient=practice.patient, appointment=visit, at=at)


def test_the_link_opens_fifteen_minutes_before_and_closes_after_the_grace(
    practice: Practice, settings: Any
) -> None:
    settings.TELEHEALTH_JITSI_BASE_URL = "https://meet.clinic.example"
    visit = _video_visit(practice)
    minute = datetime.timedelta(minutes=1)
    too_early = _join(practice, visit, NINE - 16 * minute)
    opened = _join(practice, visit, NINE - 15 * minute)
    late = _join(practice, visit, visit.end + (settings.TELEHEALTH_GRACE_MINUTES - 1) * minute)
    ended = _join(practice, visit, visit.end + settings.TELEHEALTH_GRACE_MINUTES * minute)
    assert (too_early.url, too_early.reason) == (None, JoinRefusal.TOO_EARLY)
    assert opened.url is not None and opened.url.startswith("https://meet.clinic.example/careloop-")
    assert late.url == opened.url  # one room per appointment, kept
    assert (ended.url, ended.reason) == (None, JoinRefusal.ENDED)
    room = Appointment.objects.get(pk=visit.pk).telehealth_room
    assert len(room) >= 32 and room in opened.url
    # Every ask is audited, refusals with their reason's outcome
    outcomes = list(
        AuditEvent.objects.filter(action="telehealth.join", resource_id=str(visit.pk))
        .order_by("at", "id")
        .values_list("outcome", flat=True)
    )
    assert sorted(outcomes) == ["denied", "denied", "success", "success"]


def test_no_consent_not_telehealth_and_cancelled_visits_get_no_link(practice: Practice) -> None:
    visit = _video_visit(practice, consent=False)
    assert _join(practice, visit, NINE).reason == JoinRefusal.NO_CONSENT
    with clock.frozen(AT):
        in_person = appointment_book(
            actor=practice.desk,
            patient=practice.patient,
            appointment_type=practice.visit,
            provider=practice.doctor,
            location=practice.clinic,
            start=NINE + datetime.timedelta(hours=1),
        )
        appointment_cancel(actor=practice.desk, appointment=visit)
    assert _join(practice, in_person, in_person.start).reason == JoinRefusal.NOT_TELEHEALTH
    visit.refresh_from_db()
    assert _join(practice, visit, NINE).reason == JoinRefusal.CANCELLED


def test_a_withdrawn_consent_closes_the_link(practice: Practice) -> None:
    visit = _video_visit(practice)
    with clock.frozen(NINE - datetime.timedelta(hours=1)):
        consent_record(
            patient=practice.patient,
            kind=ConsentKind.TELEHEALTH,
            status=ConsentStatus.REVOKED,
            capture_method=CaptureMethod.PORTAL_ESIGNATURE,
        )
    assert _join(practice, visit, NINE).reason == JoinRefusal.NO_CONSENT


def test_someone_elses_appointment_is_not_found(practice: Practice) -> None:
    visit = _video_visit(practice)
    stranger = make_patient("Sam", "Stranger", datetime.date(1990, 2, 2))
    with pytest.raises(NotFound):
        telehealth_join(patient=stranger, appointment=visit, at=NINE)
    with pytest.raises(NotFound):
        telehealth_status(patient=stranger, appointment=visit, at=NINE)


def test_with_an_app_secret_the_link_carries_a_signed_token_for_its_room(
    practice: Practice, settings: Any
) -> None:
    settings.TELEHEALTH_JITSI_APP_ID = "careloop"
    settings.TELEHEALTH_JITSI_APP_SECRET = "s3cret-for-tests-only-32-bytes-long!"
    visit = _video_visit(practice)
    url = _join(practice, visit, NINE).url
    token = parse_qs(urlsplit(url).query)["jwt"][0]
    claims = jwt.decode(
        token,
        settings.TELEHEALTH_JITSI_APP_SECRET,
        algorithms=["HS256"],
        audience="jitsi",
        options={"verify_nbf": False, "verify_exp": False},
    )
    assert claims["room"] == Appointment.objects.get(pk=visit.pk).telehealth_room
    assert claims["nbf"] == int((NINE - datetime.timedelta(minutes=15)).timestamp())
    assert claims["exp"] > int(visit.end.timestamp())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token, "another-secret-also-at-least-32-bytes", algorithms=["HS256"], audience="jitsi"
        )


def test_the_status_for_the_join_button_makes_no_link(practice: Practice) -> None:
    visit = _video_visit(practice)
    status = telehealth_status(patient=practice.patient, appointment=visit, at=NINE)
    assert status.can_join and status.opens_at == NINE - datetime.timedelta(minutes=15)
    assert Appointment.objects.get(pk=visit.pk).telehealth_room == ""
    assert not AuditEvent.objects.filter(action="telehealth.join").exists()
