"""Proxy access: a parent or caregiver whose own portal account is named in another
patient's relationship in force acts for that patient, with exactly the powers the
relationship's flags give; every such access is audited with both people."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from careloop.core import clock
from careloop.core.errors import NotFound, PermissionDenied
from careloop.patients.models import Patient, PatientRelationship
from careloop.portal import accounts
from careloop.portal.models import PortalAccount
from careloop.portal.proxy import Power, proxy_grants
from careloop.scheduling.booking import appointment_book
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.models import AuditEvent, Role, User
from careloop.security.permissions import Op, Resource, require
from tests.patients.builders import make_patient
from tests.portal.appointments_world import (
    AT,
    MONDAY_BEFORE_DST,
    World,
    local,
    make_world,
    portal_user,
    signed_in,
    visit,
)

pytestmark = pytest.mark.django_db
NINE = local(MONDAY_BEFORE_DST, 9)


@pytest.fixture
def world() -> Iterator[World]:
    with clock.frozen(AT):
        yield make_world()


def _leo() -> Patient:
    return make_patient("Leo", "Alvarez", datetime.date(2018, 4, 5))


def _relate(
    child: Patient,
    parent: Patient,
    *,
    start: datetime.date = datetime.date(2025, 1, 1),
    end: datetime.date | None = None,
    **flags: bool,
) -> PatientRelationship:
    return PatientRelationship.objects.create(
        patient=child,
        related_patient=parent,
        code="parent",
        period_start=start,
        period_end=end,
        created_at=clock.now(),
        **flags,
    )


def _switch(client: object, patient: Patient) -> int:
    response = client.post("/portal/switch/", {"patient": str(patient.pk)}, secure=True)  # type: ignore[attr-defined]
    return int(response.status_code)


def _account(user: User) -> PortalAccount:
    return PortalAccount.objects.select_related("patient").get(user=user)


def test_a_parent_with_every_flag_switches_to_the_childs_record(world: World) -> None:
    leo = _leo()
    _relate(leo, world.ana, may_view_record=True, may_schedule=True)
    appointment = visit(world, leo, NINE)
    client = signed_in(world.ana_user)

    home = client.get("/portal/", secure=True).content.decode()
    assert "Show the record of" in home and "Leo Alvarez" in home
    assert _switch(client, leo) == 302
    page = client.get("/portal/", secure=True).content.decode()

    assert "You are looking at Leo's record." in page
    assert f"/portal/appointments/{appointment.pk}/confirm/" in page
    assert (
        client.post(f"/portal/appointments/{appointment.pk}/confirm/", secure=True).status_code
        == 302
    )
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CONFIRMED
    access = AuditEvent.objects.filter(action="portal.proxy_access", patient_id=leo.pk)
    assert access.exists()
    assert {e.actor_id for e in access} == {str(world.ana_user.pk)}
    assert {e.resource_id for e in access} == {str(world.ana.pk)}
    confirmed = AuditEvent.objects.get(action="appointment.confirm")
    assert (confirmed.actor_id, confirmed.patient_id) == (str(world.ana_user.pk), leo.pk)


def test_a_parent_books_for_the_child_who_gets_the_appointment(world: World) -> None:
    leo = _leo()
    _relate(leo, world.ana, may_view_record=True, may_schedule=True)
    client = signed_in(world.ana_user)
    _switch(client, leo)
    slot = {
        "type": "checkup",
        "provider": str(world.doctor.pk),
        "location": str(world.clinic.pk),
        "start": str(int(NINE.timestamp())),
    }

    form = client.get("/portal/book/confirm/", slot, secure=True).content.decode()
    assert "For Leo" in form
    # A form made for Ana's own record, sent after switching to Leo, books no one.
    stale = client.post("/portal/book/confirm/", slot | {"patient": str(world.ana.pk)}, secure=True)
    assert "switched to another person" in stale.content.decode()
    response = client.post("/portal/book/confirm/", slot | {"patient": str(leo.pk)}, secure=True)

    assert response.status_code == 302
    booked = Appointment.objects.get()
    assert booked.patient_id == leo.pk
    event = AuditEvent.objects.get(action="appointment.book")
    assert (event.actor_id, event.patient_id) == (str(world.ana_user.pk), leo.pk)


def test_a_view_only_proxy_sees_but_may_not_book_or_change(world: World) -> None:
    leo = _leo()
    _relate(leo, world.ana, may_view_record=True)
    appointment = visit(world, leo, NINE)
    client = signed_in(world.ana_user)
    _switch(client, leo)

    page = client.get("/portal/", secure=True).content.decode()
    assert "Check-up" in page
    assert "/confirm/" not in page and "/cancel/" not in page and "/portal/book/" not in page
    assert f"/portal/appointments/{appointment.pk}/calendar.ics" in page
    assert client.get("/portal/book/", secure=True).status_code == 404
    assert (
        client.post(f"/portal/appointments/{appointment.pk}/confirm/", secure=True).status_code
        == 404
    )
    assert (
        client.post(f"/portal/appointments/{appointment.pk}/cancel/", secure=True).status_code
        == 404
    )
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.BOOKED


def test_a_scheduling_only_proxy_sees_appointments_but_not_the_record(world: World) -> None:
    leo = _leo()
    _relate(leo, world.ana, may_schedule=True)
    appointment = visit(world, leo, NINE)
    client = signed_in(world.ana_user)
    _switch(client, leo)

    page = client.get("/portal/", secure=True).content.decode()

    assert f"/portal/appointments/{appointment.pk}/cancel/" in page
    assert "Bring your insurance card" not in page  # tasks are the record's
    assert (
        client.get(f"/portal/appointments/{appointment.pk}/calendar.ics", secure=True).status_code
        == 404
    )


def test_an_ended_or_flagless_relationship_gives_nothing(world: World) -> None:
    leo = _leo()
    mia = make_patient("Mia", "Alvarez", datetime.date(2016, 1, 1))
    _relate(leo, world.ana, end=datetime.date(2026, 1, 31), may_view_record=True, may_schedule=True)
    _relate(mia, world.ana)  # a household member with no powers
    theirs = visit(world, leo, NINE)
    client = signed_in(world.ana_user)

    assert "Show the record of" not in client.get("/portal/", secure=True).content.decode()
    assert _switch(client, leo) == 404 and _switch(client, mia) == 404
    assert (
        client.get(f"/portal/appointments/{theirs.pk}/calendar.ics", secure=True).status_code == 404
    )
    assert [g.patient.pk for g in proxy_grants(_account(world.ana_user))] == [world.ana.pk]


def test_a_relationship_that_ends_while_the_child_is_chosen_falls_back_to_the_own_record(
    world: World,
) -> None:
    leo = _leo()
    relationship = _relate(leo, world.ana, may_view_record=True, may_schedule=True)
    client = signed_in(world.ana_user)
    _switch(client, leo)
    relationship.period_end = datetime.date(2026, 2, 1)
    relationship.save(update_fields=["period_end"])

    page = client.get("/portal/", secure=True)

    assert page.status_code == 200 and "Leo" not in page.content.decode()
    assert client.get("/portal/book/", secure=True).status_code == 200  # her own again


def test_the_child_does_not_see_the_parent(world: World) -> None:
    leo = _leo()
    _relate(leo, world.ana, may_view_record=True, may_schedule=True)
    leo_user = portal_user(leo, "leo-portal")
    ana_visit = visit(world, world.ana, NINE)
    client = signed_in(leo_user)

    assert _switch(client, world.ana) == 404
    assert (
        client.get(f"/portal/appointments/{ana_visit.pk}/calendar.ics", secure=True).status_code
        == 404
    )


def test_the_selectors_and_the_permission_rule_follow_the_flags(world: World) -> None:
    leo = _leo()
    mia = make_patient("Mia", "Alvarez", datetime.date(2016, 1, 1))
    _relate(leo, world.ana, may_view_record=True, may_message=True)
    _relate(mia, world.ana, may_schedule=True, may_sign_consents=True)
    account = _account(world.ana_user)

    assert accounts.portal_patients_for(account) == [world.ana, leo]
    assert accounts.portal_patients_for(account, Power.SCHEDULE) == [world.ana, mia]
    assert accounts.portal_patients_for(account, Power.SIGN_CONSENTS) == [world.ana, mia]
    assert accounts.portal_patients_for(account, Power.MESSAGE) == [world.ana, leo]
    assert accounts.portal_patient(account=account, patient_id=leo.pk) == leo
    with pytest.raises(NotFound):
        accounts.portal_patient(account=account, patient_id=mia.pk)  # no view power
    assert AuditEvent.objects.filter(action="portal.proxy_access", patient_id=leo.pk).exists()

    user = world.ana_user
    assert require(user, Op.WRITE, Resource.APPOINTMENTS, patient_id=world.ana.pk) == user
    assert require(user, Op.WRITE, Resource.APPOINTMENTS, patient_id=mia.pk) == user
    for refused in (leo.pk, make_patient("Ben", "Brooks", datetime.date(1971, 5, 6)).pk):
        with pytest.raises(PermissionDenied):
            require(user, Op.WRITE, Resource.APPOINTMENTS, patient_id=refused)
    with pytest.raises(PermissionDenied):
        require(user, Op.READ, Resource.CLINICAL, patient_id=world.ana.pk)
    with pytest.raises(PermissionDenied):
        require(user, Op.EXPORT, Resource.APPOINTMENTS, patient_id=world.ana.pk)
    with pytest.raises(PermissionDenied):
        require(user, Op.WRITE, Resource.APPOINTMENTS)  # no record named: nothing


def test_a_patient_user_cannot_book_someone_else_through_the_service(world: World) -> None:
    ben = make_patient("Ben", "Brooks", datetime.date(1971, 5, 6))
    with pytest.raises(PermissionDenied):
        appointment_book(
            actor=world.ana_user,
            patient=ben,
            appointment_type=world.checkup,
            provider=world.doctor,
            location=world.clinic,
            start=NINE,
        )
    assert not Appointment.objects.exists()
    denied = AuditEvent.objects.get(action="access.denied", patient_id=ben.pk)
    assert denied.actor_id == str(world.ana_user.pk)


def test_an_inactive_patient_user_has_no_reach(world: World) -> None:
    world.ana_user.is_active = False
    world.ana_user.save(update_fields=["is_active"])
    assert world.ana_user.role == Role.PATIENT
    with pytest.raises(PermissionDenied):
        require(world.ana_user, Op.WRITE, Resource.APPOINTMENTS, patient_id=world.ana.pk)
