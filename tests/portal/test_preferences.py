"""The portal's preference centre: channels, purposes, quiet hours, language and push,
recorded with the portal as their source and read by `may_contact` at once."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.test import Client

from careloop.consent.decisions import may_contact
from careloop.consent.ledger import consent_current
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ChannelOptIn,
    CommunicationPreference,
    ConsentKind,
    ConsentRecord,
    ConsentStatus,
    ContentClass,
    Purpose,
)
from careloop.consent.preferences import Preferences, preferences_update
from careloop.consent.services import ConsentError
from careloop.core import clock
from careloop.core.errors import PermissionDenied
from careloop.patients.models import Patient
from careloop.security.models import AuditEvent, Role
from tests.patients.builders import add_contact
from tests.portal.builders import grant
from tests.portal.test_consents import portal_patient
from tests.security.clinic import staff_user
from tests.security.personas import force_verified_login

pytestmark = pytest.mark.django_db

CHANNELS = [c.value for c in Channel]
PURPOSES = [p.value for p in Purpose]


def noon() -> datetime.datetime:
    """Tomorrow at noon in the patient's zone (New York by default): after the records
    written now, outside any quiet hours."""
    return (clock.now() + datetime.timedelta(days=1)).replace(hour=17, minute=0)


def form_as_shown(client: Client) -> dict[str, Any]:
    """The preference form's fields as the page fills them, ready to post back."""
    page = client.get("/portal/preferences/", secure=True)
    assert page.status_code == 200
    form = page.context["form"]
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value.strftime("%H:%M") if isinstance(value, datetime.time) else value
    return data


def post(client: Client, data: dict[str, Any]) -> Any:
    return client.post("/portal/preferences/", data, secure=True)


def sms_reachable(patient: Patient) -> None:
    add_contact(patient, "phone", "+1 217 555 0100", verified=True, can_sms=True)


def test_saving_the_form_unchanged_writes_nothing() -> None:
    patient, _, client = portal_patient()

    response = post(client, form_as_shown(client))

    assert response.status_code == 302
    assert not ConsentRecord.objects.filter(patient=patient).exists()
    assert not ChannelOptIn.objects.filter(patient=patient).exists()
    assert not CommunicationPreference.objects.filter(patient=patient).exists()


def test_turning_text_messages_on_records_a_portal_consent_and_may_contact_allows_it() -> None:
    patient, user, client = portal_patient()
    sms_reachable(patient)
    ask = {"channel": Channel.SMS, "purpose": Purpose.CARE_REMINDER, "at": noon()}
    before = may_contact(patient, content_class=ContentClass.GENERIC, **ask)
    assert not before

    data = form_as_shown(client) | {"consent_comm_sms": "on"}
    response = post(client, data)

    assert response.status_code == 302
    record = ConsentRecord.objects.get(patient=patient, kind=ConsentKind.SMS)
    assert record.status == ConsentStatus.GRANTED
    assert record.capture_method == CaptureMethod.PORTAL_PREFERENCES
    assert record.captured_by == user
    assert may_contact(patient, content_class=ContentClass.GENERIC, **ask)


def test_unticking_a_purpose_opts_out_and_may_contact_withholds_it() -> None:
    patient, _, client = portal_patient()
    sms_reachable(patient)
    grant(patient, ConsentKind.SMS)
    data = form_as_shown(client)
    assert data["optin_sms_survey"] == "on", "surveys are opt-out: shown ticked"

    del data["optin_sms_survey"]
    post(client, data)

    opt_in = ChannelOptIn.objects.get(patient=patient, channel="sms", purpose="survey")
    assert opt_in.opted_in is False
    assert ChannelOptIn.objects.filter(patient=patient).count() == 1, "others stay unanswered"
    decision = may_contact(
        patient,
        channel=Channel.SMS,
        purpose=Purpose.SURVEY,
        content_class=ContentClass.GENERIC,
        at=noon(),
    )
    assert not decision and decision.reason == "opted_out"
    event = AuditEvent.objects.get(action="preferences.update", patient_id=patient.pk)
    assert event.actor_kind == "patient" and "opt_ins" in event.fields


def test_channel_order_quiet_hours_and_language_are_saved() -> None:
    patient, _, client = portal_patient()
    data = form_as_shown(client) | {
        "channel_1": "email",
        "channel_2": "sms",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
        "language": "es",
    }

    response = post(client, data)

    assert response.status_code == 302 and "lang=es" in response["Location"]
    preference = CommunicationPreference.objects.get(patient=patient)
    assert preference.channel_order == ["email", "sms"]
    assert (preference.quiet_start, preference.quiet_end) == (
        datetime.time(21, 0),
        datetime.time(8, 0),
    )
    patient.refresh_from_db()
    assert patient.preferred_language == "es"


def test_turning_push_on_and_off_records_the_push_consent() -> None:
    patient, _, client = portal_patient()

    post(client, form_as_shown(client) | {"consent_comm_push": "on"})
    now = clock.now()
    assert consent_current(patient=patient, kind=ConsentKind.PUSH, at=now) == "granted"
    data = form_as_shown(client)
    assert data["consent_comm_push"] == "on"
    del data["consent_comm_push"]
    post(client, data)

    records = ConsentRecord.objects.filter(patient=patient, kind="comm_push").order_by(
        "recorded_at"
    )
    assert [r.status for r in records] == ["granted", "revoked"]
    assert {r.capture_method for r in records} == {"portal_prefs"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"channel_1": "sms", "channel_2": "sms"}, "Choose each channel once."),
        ({"quiet_start": "21:00", "quiet_end": ""}, "Give both ends of the quiet hours"),
        ({"channel_1": "fax"}, "Select a valid choice"),
        ({"quiet_start": "25:99", "quiet_end": "08:00"}, "Enter a valid time"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_nothing_written(
    change: dict[str, str], message: str
) -> None:
    patient, _, client = portal_patient()

    response = post(client, form_as_shown(client) | change)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not CommunicationPreference.objects.filter(patient=patient).exists()


def test_staff_see_the_portal_change_in_the_consent_history() -> None:
    patient, _, client = portal_patient()
    post(client, form_as_shown(client) | {"consent_comm_email": "on"})
    desk = force_verified_login(Client(), staff_user(Role.FRONT_DESK, "desk"))

    page = desk.get(f"/patients/{patient.pk}/consents/", secure=True).content.decode()

    assert "Portal preference centre" in page


def test_staff_may_not_use_the_portal_source_and_a_patient_may_not_use_staff_ones() -> None:
    patient, user, _ = portal_patient()
    desk = staff_user(Role.FRONT_DESK, "desk")
    wanted = Preferences(
        channel_order=[Channel.EMAIL], quiet_start=None, quiet_end=None, do_not_contact=False
    )

    with pytest.raises(PermissionDenied):
        preferences_update(
            actor=desk, patient=patient, preferences=wanted, method=CaptureMethod.PORTAL_PREFERENCES
        )
    with pytest.raises(PermissionDenied):
        preferences_update(
            actor=user, patient=patient, preferences=wanted, method=CaptureMethod.VERBAL
        )
    with pytest.raises(ConsentError):
        preferences_update(
            actor=user, patient=patient, preferences=wanted, method=CaptureMethod.SMS_KEYWORD
        )
    assert not CommunicationPreference.objects.filter(patient=patient).exists()


def test_the_preference_page_labels_every_input() -> None:
    _, _, client = portal_patient()

    page = client.get("/portal/preferences/?lang=es", secure=True).content.decode()

    ids = re.findall(r'<(?:input|select)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page)
    assert len(ids) == len(CHANNELS) * len(PURPOSES) + 4 + 3 + 2 + 1
    for input_id in ids:
        assert f'<label for="{input_id}">' in page
    assert "Preferencias de comunicación" in page
