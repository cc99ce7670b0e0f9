"""The waitlist: a cancelled slot is offered to the patients waiting for it, first asked
first, through the outbox; the first claim books it, the others are told it is gone."""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.test import Client

from careloop.core import clock
from careloop.outreach.models import Message
from careloop.patients.models import Patient
from careloop.scheduling.booking import (
    OnBehalf,
    appointment_book,
    appointment_cancel,
)
from careloop.scheduling.models import (
    Appointment,
    AppointmentStatus,
    OfferStatus,
    TimeOfDay,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from careloop.scheduling.waitlist import (
    ClaimOutcome,
    WaitlistInvalid,
    waitlist_claim,
    waitlist_request,
    waitlist_sweep,
)
from careloop.security.models import AuditEvent, Role
from tests.patients.builders import add_contact, make_patient, make_user
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, Practice, local, make_practice
from tests.security.personas import force_verified_login

NINE = local(MONDAY_BEFORE_DST, 9)
CODE = re.compile(r"/w/([A-Za-z0-9]+)")


@pytest.fixture
def practice(db: Any) -> Iterator[Practice]:
    with clock.frozen(AT):
        yield make_practice()


def _waiting(practice: Practice, given: str, **extra: Any) -> Patient:
    patient = make_patient(given, "Waiting", datetime.date(1980, 1, 1))
    add_contact(patient, "email", f"{given.lower()}@example.org", verified=True, can_email=True)
    # Asked one after the other: a minute apart, before "now".
    asked = AT - datetime.timedelta(minutes=60 - WaitlistEntry.objects.count())
    with clock.frozen(asked):
        waitlist_request(
            actor=practice.desk,
            patient=patient,
            appointment_type=practice.visit,
            earliest=MONDAY_BEFORE_DST,
            latest=MONDAY_BEFORE_DST + datetime.timedelta(days=7),
            **extra,
        )
    return patient


def _cancel_nine(practice: Practice, capture: Callable[..., Any]) -> Appointment:
    booked = appointment_book(
        actor=practice.desk,
        patient=practice.patient,
        appointment_type=practice.visit,
        provider=practice.doctor,
        location=practice.clinic,
        start=NINE,
    )
    # Every other morning slot is taken, so only 09:00 can be offered.
    for minutes in range(30, 180, 30):
        appointment_book(
            actor=practice.desk,
            patient=practice.patient,
            appointment_type=practice.visit,
            provider=practice.doctor,
            location=practice.clinic,
            start=NINE + datetime.timedelta(minutes=minutes),
        )
    with capture(execute=True):
        appointment_cancel(actor=practice.desk, appointment=booked)
    return booked


def _offer_code(patient: Patient) -> str:
    message = Message.objects.get(patient=patient, template_id="waitlist-offer")
    found = CODE.search(message.body)
    assert found, "the offer carries its claim link"
    return found.group(1)


@pytest.mark.django_db
def test_a_cancelled_slot_is_offered_to_the_waitlist_and_claimed_once(
    practice: Practice, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # Given two patients waiting, Bea first, then Carl, and a full Monday morning
    bea = _waiting(practice, "Bea")
    carl = _waiting(practice, "Carl")
    # When the 09:00 visit is cancelled
    _cancel_nine(practice, django_capture_on_commit_callbacks)
    # Then both are offered 09:00 through the outbox, with a link naming nothing
    offers = WaitlistOffer.objects.order_by("entry__requested_at")
    assert [o.entry.patient_id for o in offers] == [bea.pk, carl.pk]
    assert {o.start for o in offers} == {NINE}
    bea_code, carl_code = _offer_code(bea), _offer_code(carl)
    assert str(bea.pk) not in bea_code and len(bea_code) == 12
    # When Carl clicks and books, and Bea clicks after him
    client = Client()
    with clock.frozen(AT):
        assert client.get(f"/w/{carl_code}").status_code == 200  # a GET books nothing
        assert not Appointment.objects.filter(patient=carl).exists()
        carl_page = client.post(f"/w/{carl_code}")
        bea_page = client.post(f"/w/{bea_code}")
    # Then exactly one is booked, and Bea is told on the page and by a message
    assert carl_page.status_code == 200 and b'data-outcome="booked"' in carl_page.content
    assert bea_page.status_code == 409 and b'data-outcome="gone"' in bea_page.content
    assert Appointment.objects.filter(patient=carl, start=NINE, status="booked").count() == 1
    assert not Appointment.objects.filter(patient=bea).exists()
    assert Message.objects.filter(patient=bea, template_id="waitlist-slot-gone").count() == 1
    assert not Message.objects.filter(patient=carl, template_id="waitlist-slot-gone").exists()
    # Carl leaves the waitlist; Bea is still waiting for the next one
    assert WaitlistEntry.objects.get(patient=carl).status == WaitlistStatus.BOOKED
    assert WaitlistEntry.objects.get(patient=bea).status == WaitlistStatus.WAITING
    # The claim is audited as the patient's own booking
    booking = Appointment.objects.get(patient=carl)
    event = AuditEvent.objects.get(action="appointment.book", resource_id=str(booking.pk))
    assert (event.actor_kind, event.actor_id) == ("patient", str(carl.pk))


@pytest.mark.django_db
def test_a_second_click_on_the_winning_link_books_nothing_more(
    practice: Practice, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    carl = _waiting(practice, "Carl")
    _cancel_nine(practice, django_capture_on_commit_callbacks)
    code = _offer_code(carl)
    with clock.frozen(AT):
        assert waitlist_claim(code=code).outcome == ClaimOutcome.BOOKED
        assert waitlist_claim(code=code).outcome == ClaimOutcome.ALREADY
    assert Appointment.objects.filter(patient=carl).count() == 1


def _claim_waiting_for_locks(code: str) -> ClaimOutcome:
    """Claim; on SQLite, wait out the other claim's exclusive lock. The test database is
    in memory with a shared cache, which answers "locked" at once where a database file
    waits (busy timeout); PostgreSQL always waits."""
    for _ in range(200):
        try:
            return waitlist_claim(code=code).outcome
        except OperationalError:
            if connection.vendor != "sqlite":
                raise
            time.sleep(0.05)
    raise AssertionError("the other claim never let go of its lock")


@pytest.mark.django_db(transaction=True)
def test_two_patients_claiming_at_the_same_moment_get_one_booking(
    practice: Practice, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # Given two offers of the same freed slot
    bea = _waiting(practice, "Bea")
    carl = _waiting(practice, "Carl")
    _cancel_nine(practice, django_capture_on_commit_callbacks)
    codes = [_offer_code(bea), _offer_code(carl)]
    start = threading.Barrier(2)
    outcomes: list[ClaimOutcome] = []

    def click(code: str) -> None:
        try:
            # Connected before the race: the race is the claim, not the connect.
            WaitlistOffer.objects.filter(code=code).exists()
            start.wait()
            outcomes.append(_claim_waiting_for_locks(code))
        finally:
            connection.close()

    # When both claim at once, each on its own connection
    with clock.frozen(AT):
        threads = [threading.Thread(target=click, args=(c,)) for c in codes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    # Then exactly one booked it and the other was told it is gone
    assert sorted(outcomes) == [ClaimOutcome.BOOKED, ClaimOutcome.GONE]
    assert Appointment.objects.filter(start=NINE, status=AppointmentStatus.BOOKED).count() == 1
    assert Message.objects.filter(template_id="waitlist-slot-gone").count() == 1


@pytest.mark.django_db
def test_an_expired_or_altered_link_changes_nothing(
    practice: Practice, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    carl = _waiting(practice, "Carl")
    _cancel_nine(practice, django_capture_on_commit_callbacks)
    code = _offer_code(carl)
    client = Client()
    with clock.frozen(AT):
        altered = client.post(f"/w/{code[:-1]}{'A' if code[-1] != 'A' else 'B'}")
    with clock.frozen(AT + datetime.timedelta(days=1)):
        expired = client.post(f"/w/{code}")
    assert altered.status_code == 403 and b"does not work" in altered.content
    assert expired.status_code == 410 and b'data-outcome="expired"' in expired.content
    assert not Appointment.objects.filter(patient=carl).exists()


@pytest.mark.django_db
def test_unclaimed_offers_expire_and_the_next_wave_is_asked(
    practice: Practice,
    settings: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # Given a wave of one and two patients waiting
    settings.WAITLIST_OFFER_WAVE = 1
    bea = _waiting(practice, "Bea")
    carl = _waiting(practice, "Carl")
    _cancel_nine(practice, django_capture_on_commit_callbacks)
    assert WaitlistOffer.objects.get().entry.patient_id == bea.pk
    # When Bea's offer runs out
    with clock.frozen(AT + datetime.timedelta(minutes=settings.WAITLIST_OFFER_MINUTES + 1)):
        made = waitlist_sweep()
    # Then Carl is offered the slot in the second wave
    assert made == 1
    second = WaitlistOffer.objects.get(entry__patient=carl)
    assert (second.wave, second.status) == (2, OfferStatus.OPEN)
    assert WaitlistOffer.objects.get(entry__patient=bea).status == OfferStatus.EXPIRED


@pytest.mark.django_db
def test_the_time_of_day_and_provider_choice_are_respected(
    practice: Practice, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    afternoon = _waiting(practice, "Dora", time_of_day=TimeOfDay.AFTERNOON)
    morning = _waiting(practice, "Eli", time_of_day=TimeOfDay.MORNING)
    _cancel_nine(practice, django_capture_on_commit_callbacks)
    assert list(WaitlistOffer.objects.values_list("entry__patient_id", flat=True)) == [morning.pk]
    assert not WaitlistOffer.objects.filter(entry__patient=afternoon).exists()


@pytest.mark.django_db
def test_bad_requests_are_refused_with_a_reason_and_a_patient_acts_only_for_themself(
    practice: Practice,
) -> None:
    with clock.frozen(AT), pytest.raises(WaitlistInvalid, match="before the first"):
        waitlist_request(
            actor=practice.desk,
            patient=practice.patient,
            appointment_type=practice.visit,
            earliest=MONDAY_BEFORE_DST,
            latest=MONDAY_BEFORE_DST - datetime.timedelta(days=1),
        )
    other = make_patient("Fay", "Other", datetime.date(1990, 1, 1))
    with clock.frozen(AT), pytest.raises(Exception, match="only their own"):
        waitlist_request(
            actor=OnBehalf("patient", str(other.pk)),
            patient=practice.patient,
            appointment_type=practice.visit,
            earliest=MONDAY_BEFORE_DST,
            latest=MONDAY_BEFORE_DST,
        )
    assert not WaitlistEntry.objects.exists()


@pytest.mark.django_db
def test_staff_see_the_waitlist_and_can_book_an_entry_directly_or_remove_it(
    practice: Practice, client: Client
) -> None:
    bea = _waiting(practice, "Bea")
    carl = _waiting(practice, "Carl")
    force_verified_login(client, practice.desk)
    with clock.frozen(AT):
        page = client.get("/schedule/waitlist/", secure=True)
        assert page.status_code == 200
        assert b"Bea Waiting" in page.content and b"Carl Waiting" in page.content
        bea_entry = WaitlistEntry.objects.get(patient=bea)
        detail = client.get(f"/schedule/waitlist/{bea_entry.pk}/", secure=True)
        assert detail.status_code == 200
        slot = re.search(rb'name="slot" id="slot-1" value="([^"]+)"', detail.content)
        assert slot
        booked = client.post(
            f"/schedule/waitlist/{bea_entry.pk}/",
            {"action": "book", "slot": slot.group(1).decode()},
            secure=True,
        )
        assert booked.status_code == 302
        carl_entry = WaitlistEntry.objects.get(patient=carl)
        client.post(f"/schedule/waitlist/{carl_entry.pk}/", {"action": "remove"}, secure=True)
    assert Appointment.objects.get(patient=bea).start == NINE
    assert WaitlistEntry.objects.get(patient=bea).status == WaitlistStatus.BOOKED
    assert WaitlistEntry.objects.get(patient=carl).status == WaitlistStatus.REMOVED
    # A marketing user may not see it
    force_verified_login(client, make_user(Role.MARKETING))
    assert client.get("/schedule/waitlist/", secure=True).status_code == 403


@pytest.mark.django_db
def test_the_claim_page_speaks_the_patients_language(
    practice: Practice, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    rosa = _waiting(practice, "Rosa")
    Patient.objects.filter(pk=rosa.pk).update(preferred_language="es")
    _cancel_nine(practice, django_capture_on_commit_callbacks)
    code = _offer_code(rosa)
    with clock.frozen(AT):
        spanish = Client().get(f"/w/{code}")
        english = Client().get(f"/w/{code}?lang=en")
    assert "Hay una hora libre antes" in spanish.content.decode()
    assert spanish.headers["Content-Language"] == "es"
    assert b"An earlier time is free" in english.content
    assert b"Monday, March 2, 2026, 9:00 AM" in english.content  # the clinic's wall clock


@pytest.mark.django_db
def test_a_portal_patient_asks_for_a_self_bookable_type_only(practice: Practice) -> None:
    from careloop.portal.models import PortalAccount

    user = make_user(Role.PATIENT, "ana-portal")
    with clock.frozen(AT):
        PortalAccount.objects.create(user=user, patient=practice.patient, created_at=AT)
        ask = {
            "actor": user,
            "patient": practice.patient,
            "appointment_type": practice.visit,
            "earliest": MONDAY_BEFORE_DST,
            "latest": MONDAY_BEFORE_DST,
        }
        with pytest.raises(WaitlistInvalid, match="booked by the practice"):
            waitlist_request(**ask)
        practice.visit.self_bookable = True
        practice.visit.save(update_fields=["self_bookable"])
        entry = waitlist_request(**ask)
    assert (entry.channel, entry.requested_by_id) == ("portal", None)
