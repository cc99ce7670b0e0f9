"""Conflicts with the EHR, through the real HL7 SIU ingest: an EHR visit overlapping a
careloop booking, or an EHR change to a careloop booking, is flagged for staff and never
applied silently; staff settle it on the conflicts page."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from django.test import Client

from careloop.consent.baa import vendor_add, vendor_set_baa
from careloop.consent.models import BaaStatus, VendorKind
from careloop.core import clock
from careloop.ehr.hl7_apply import Hl7Handler, hl7_source_ensure
from careloop.ehr.models import Source, SourceRecord
from careloop.scheduling.booking import appointment_book
from careloop.scheduling.models import (
    Appointment,
    AppointmentConflict,
    AppointmentStatus,
    ConflictKind,
    Provider,
)
from careloop.security.models import Role
from tests.patients.builders import make_user
from tests.scheduling.practice import AT, MONDAY_BEFORE_DST, Practice, local, make_practice
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)  # 14:00 UTC


@pytest.fixture
def practice() -> Iterator[Practice]:
    with clock.frozen(AT):
        yield make_practice()


@pytest.fixture
def source() -> Source:
    with clock.frozen(AT):
        vendor = vendor_add(actor=None, name="Riverbend EHR", kind=VendorKind.EHR)
        vendor_set_baa(
            actor=None,
            vendor=vendor,
            status=BaaStatus.ACTIVE,
            signed_on=datetime.date(2024, 1, 1),
            expires_on=None,
        )
        return hl7_source_ensure(name="riverbend-siu", vendor_name=vendor.name)


def siu(event: str, control: str, *, start: str, npi: str, appt: str = "APPT77") -> bytes:
    lines = [
        f"MSH|^~\\&|EPIC|RIVERBEND|CARELOOP|CLINIC|20260227120000||SIU^{event}|{control}|P|2.5.1",
        f"SCH|P{appt}|{appt}|||||FOLLOWUP^Follow-up visit|FU^Follow-up|20|min|"
        f"^^20^{start}|||||||||||||||Booked",
        "PID|1||MRN1001^^^RB&1.2.840.99&ISO^MR||Okafor^Adaeze^^^^^L||19750411|F",
        "RGS|1",
        f"AIS|1||FU^Follow-up visit|{start}|||20|min",
        "AIL|1||CLINIC-NORTH^^^RIVERBEND",
        f"AIP|1||{npi}^Hale^Jordan^^^Dr^^^NPI||ATTENDING",
    ]
    return ("\r".join(lines) + "\r").encode()


def _ingest(source: Source, message: bytes) -> str:
    with clock.frozen(AT):
        ack = Hl7Handler(source=source).message(message)
    return ack.decode()


def _booking(practice: Practice) -> Appointment:
    with clock.frozen(AT):
        return appointment_book(
            actor=practice.desk,
            patient=practice.patient,
            appointment_type=practice.visit,
            provider=practice.doctor,
            location=practice.clinic,
            start=NINE,
        )


def test_an_ehr_visit_overlapping_a_careloop_booking_is_flagged_and_settled_by_staff(
    practice: Practice, source: Source, client: Client
) -> None:
    # Given careloop booked Dr. Chen at 09:00 (14:00 UTC)
    booking = _booking(practice)
    # When the EHR reports a visit with her at 14:15 UTC over SIU
    ack = _ingest(source, siu("S12", "C1", start="202603021415", npi=practice.doctor.npi))
    assert "MSA|AA|C1" in ack
    # Then both appointments stand, and one open overlap conflict names them
    ehr_row = Appointment.objects.get(source="ehr")
    booking.refresh_from_db()
    assert booking.status == ehr_row.status == AppointmentStatus.BOOKED
    conflict = AppointmentConflict.objects.get()
    assert (conflict.kind, conflict.appointment_id, conflict.other_id) == (
        ConflictKind.OVERLAP,
        booking.pk,
        ehr_row.pk,
    )
    assert conflict.resolved_at is None
    # The same message again opens nothing new
    _ingest(source, siu("S14", "C2", start="202603021415", npi=practice.doctor.npi))
    assert AppointmentConflict.objects.count() == 1
    # When the front desk keeps careloop's booking on the conflicts page
    force_verified_login(client, practice.desk)
    with clock.frozen(AT):
        page = client.get("/schedule/conflicts/", secure=True)
        assert page.status_code == 200 and str(conflict.pk).encode() in page.content
        done = client.post(
            f"/schedule/conflicts/{conflict.pk}/resolve/", {"action": "keep_careloop"}, secure=True
        )
    # Then the EHR's row is cancelled in careloop and the conflict is closed, by her
    assert done.status_code == 302
    conflict.refresh_from_db()
    ehr_row.refresh_from_db()
    assert (conflict.resolution, conflict.resolved_by_id) == ("keep_careloop", practice.desk.pk)
    assert ehr_row.status == AppointmentStatus.CANCELLED
    assert Appointment.objects.get(pk=booking.pk).status == AppointmentStatus.BOOKED


def test_an_ehr_visit_that_does_not_overlap_is_no_conflict(
    practice: Practice, source: Source
) -> None:
    _booking(practice)
    _ingest(source, siu("S12", "C1", start="202603021430", npi=practice.doctor.npi))
    assert not AppointmentConflict.objects.exists()


def test_an_ehr_change_to_a_careloop_booking_is_held_for_staff(
    practice: Practice, source: Source, client: Client
) -> None:
    # Given a careloop booking the EHR knows under its own id (written back earlier)
    booking = _booking(practice)
    with clock.frozen(AT):
        SourceRecord.objects.create(
            source=source,
            resource_type="Appointment",
            resource_id="APPT77",
            target_id=booking.pk,
            patient_id=booking.patient_id,
            content_hash=0,
            created_at=AT,
            updated_at=AT,
        )
    # When the EHR reschedules it to 10:00
    _ingest(source, siu("S13", "C1", start="202603021500", npi=practice.doctor.npi))
    # Then careloop's booking is unchanged and the proposal waits for staff
    booking.refresh_from_db()
    assert booking.start == NINE
    conflict = AppointmentConflict.objects.get()
    assert conflict.kind == ConflictKind.EHR_CHANGED
    assert conflict.proposed_start == datetime.datetime(2026, 3, 2, 15, tzinfo=datetime.UTC)
    # When staff apply the EHR's change
    force_verified_login(client, practice.desk)
    with clock.frozen(AT):
        client.post(
            f"/schedule/conflicts/{conflict.pk}/resolve/", {"action": "accept_ehr"}, secure=True
        )
    booking.refresh_from_db()
    assert booking.start == conflict.proposed_start
    assert booking.busy_until == booking.end
    assert AppointmentConflict.objects.get().resolution == "accept_ehr"


def test_the_conflicts_page_is_refused_to_roles_without_appointments(
    practice: Practice, client: Client
) -> None:
    force_verified_login(client, make_user(Role.MARKETING))
    assert client.get("/schedule/conflicts/", secure=True).status_code == 403


def test_a_fhir_appointment_overlapping_a_careloop_booking_is_flagged(practice: Practice) -> None:
    from tests.ehr.feed import Feed
    from tests.ehr.test_records import APPOINTMENT, LOCATION, SYNTHEA_PATIENT, SYNTHEA_PRACTITIONER

    # Given the EHR's practitioner, and a careloop booking of hers at 18:15-18:45 UTC
    with clock.frozen(AT):
        feed = Feed.open()
        for resource in (SYNTHEA_PATIENT, LOCATION, SYNTHEA_PRACTITIONER):
            feed.send(resource)
        doctor = Provider.objects.get(npi="9999999679")
        start = datetime.datetime(2026, 4, 2, 18, 15, tzinfo=datetime.UTC)
        booking = Appointment.objects.create(
            patient=practice.patient,
            provider=doctor,
            location=doctor.location,
            appointment_type=practice.visit,
            start=start,
            end=start + datetime.timedelta(minutes=30),
            busy_until=start + datetime.timedelta(minutes=30),
            created_at=AT,
        )
        # When the FHIR Appointment at 18:30 UTC comes in
        result = feed.send(APPOINTMENT)
    # Then it is stored, and the overlap is flagged
    conflict = AppointmentConflict.objects.get()
    assert (conflict.appointment_id, conflict.other_id) == (booking.pk, result.target_id)
