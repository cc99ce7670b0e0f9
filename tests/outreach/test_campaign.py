"""Population campaigns: set-based decisions that agree with `may_contact`, and an
enqueue that writes each patient's message once, sealed, with one audit event a run."""

from __future__ import annotations

import datetime
import random
import uuid
from collections import Counter

import pytest

from careloop.consent.decisions import Decision, Reason, may_contact
from careloop.consent.ledger import consent_record
from careloop.consent.models import (
    CaptureMethod,
    Channel,
    ChannelOptIn,
    CommunicationPreference,
    ConsentKind,
    ConsentStatus,
    ContactEvent,
    ContentClass,
    Purpose,
    RestrictedTopic,
    TopicRestriction,
)
from careloop.core import clock
from careloop.outreach import campaign, campaign_facts
from careloop.outreach.campaign import (
    Recipient,
    campaign_enqueue,
    campaign_idempotency_key,
    contact_decisions,
)
from careloop.outreach.dispatch import dispatch_due
from careloop.outreach.models import Message, MessageStatus
from careloop.outreach.outbox import Rendered, address_for
from careloop.patients.models import LifecycleStage, Patient
from careloop.security.models import AuditEvent
from tests.outreach.conftest import NOON, reachable_patient
from tests.outreach.fake_twilio import FakeTwilio
from tests.patients.builders import add_contact, make_patient

pytestmark = pytest.mark.django_db

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
)
WINDOWS = (
    (datetime.time(20, 0), datetime.time(7, 0)),
    (datetime.time(22, 30), datetime.time(6, 0)),
    (datetime.time(11, 0), datetime.time(14, 0)),  # a nap: does not cross midnight
    (datetime.time(21, 0), None),  # half a window: the practice's hours hold
)
PURPOSES = list(Purpose)
CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.VOICE)


def _day(days: float) -> datetime.datetime:
    return NOON - datetime.timedelta(days=days)


def _ledger(rng: random.Random, patient: Patient, kind: ConsentKind, *, given: bool) -> None:
    """A random history for one consent: none, granted, revoked (STOP), denied, expired,
    or granted only from a day after the campaign."""
    stories = ("none", "granted", "granted", "revoked", "denied", "expired", "later")
    story = "granted" if given else rng.choice(stories)
    if story == "none":
        return
    first = _day(rng.uniform(30, 400))
    status = ConsentStatus.DENIED if story == "denied" else ConsentStatus.GRANTED
    period_end = _day(rng.uniform(1, 20)) if story == "expired" else None
    start = NOON + datetime.timedelta(days=1) if story == "later" else first
    consent_record(
        patient=patient,
        kind=kind,
        status=status,
        capture_method=CaptureMethod.PAPER,
        captured_at=start,
        period_end=period_end,
    )
    if story == "revoked":
        consent_record(
            patient=patient,
            kind=kind,
            status=ConsentStatus.REVOKED,
            capture_method=CaptureMethod.SMS_KEYWORD,
            captured_at=_day(rng.uniform(1, 25)),
        )


def varied_population(count: int, *, seed: int) -> list[Patient]:
    """Patients drawn across every fact a rule reads, each independently; every fourth
    is reachable by text (so the later rules, quiet hours and caps, get their turn)."""
    rng = random.Random(seed)
    patients = []
    for i in range(count):
        reachable = i % 4 == 0
        dead = rng.random() < 0.08 and not reachable
        patient = make_patient(
            f"Given{i}",
            f"Family{i}",
            datetime.date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
            time_zone=rng.choice(ZONES),
            preferred_name=f"Pref{i}" if rng.random() < 0.2 else None,
            preferred_language=rng.choice(("en", "en", "es")),
            deceased_on=datetime.date(2025, 5, 1) if dead and rng.random() < 0.5 else None,
            lifecycle_stage=LifecycleStage.DECEASED if dead else LifecycleStage.CHRONIC,
        )
        phones = ("none", "sms", "sms", "sms", "unverified", "voice-only", "two")
        phone = "sms" if reachable else rng.choice(phones)
        if phone == "two":
            add_contact(patient, "phone", f"+1617555{i:04d}", verified=False, can_sms=True)
            add_contact(patient, "phone", f"+1508555{i:04d}", verified=True, can_sms=True, rank=2)
        elif phone != "none":
            add_contact(
                patient,
                "phone",
                f"+1617555{i:04d}",
                verified=phone != "unverified",
                can_sms=phone != "voice-only",
                can_voice=True,
            )
        if rng.random() < 0.7:
            add_contact(
                patient,
                "email",
                f"p{i}@example.org",
                verified=rng.random() < 0.8,
                can_email=True,
            )
        if rng.random() < 0.7:
            window = rng.choice((*WINDOWS, (None, None)))
            CommunicationPreference.objects.create(
                patient=patient,
                do_not_contact=rng.random() < 0.1,
                quiet_start=window[0],
                quiet_end=window[1],
                updated_at=clock.now(),
            )
        for kind in (ConsentKind.SMS, ConsentKind.VOICE, ConsentKind.MARKETING):
            _ledger(rng, patient, kind, given=reachable and kind != ConsentKind.MARKETING)
        for channel in CHANNELS:
            for purpose in PURPOSES:
                if rng.random() < 0.3:
                    ChannelOptIn.objects.create(
                        patient=patient,
                        channel=channel,
                        purpose=purpose,
                        opted_in=rng.random() < 0.7,
                        updated_at=clock.now(),
                    )
        if rng.random() < 0.15:
            TopicRestriction.objects.create(
                patient=patient, topic=rng.choice(list(RestrictedTopic)), created_at=clock.now()
            )
        for _ in range(rng.choice((0, 0, 1, 2, 4)) + (2 if reachable else 0)):
            ContactEvent.objects.create(
                patient=patient,
                channel=rng.choice(CHANNELS),
                purpose=rng.choice(PURPOSES),
                at=_day(rng.choice((0.1, 0.5, 2, 5, 6.9, 8, 30))),
            )
        patients.append(patient)
    return patients


# Noon in New York; late evening on the east coast; early morning in the west; and the
# night the clocks went back (01:30 New York happened twice).
MOMENTS = (
    NOON,
    datetime.datetime(2026, 6, 11, 2, 30, tzinfo=datetime.UTC),
    datetime.datetime(2026, 6, 10, 13, 15, tzinfo=datetime.UTC),
    datetime.datetime(2026, 11, 1, 6, 30, tzinfo=datetime.UTC),
)


def _asks(
    rng: random.Random, count: int
) -> list[tuple[str, str, str, str | None, datetime.datetime]]:
    fixed = [
        (Channel.SMS, Purpose.CARE_REMINDER, ContentClass.GENERIC, None, NOON),
        (Channel.SMS, Purpose.MARKETING, ContentClass.GENERIC, None, MOMENTS[1]),
        (Channel.EMAIL, Purpose.MARKETING, ContentClass.GENERIC, None, NOON),
        (Channel.VOICE, Purpose.APPOINTMENT, ContentClass.LOGISTICS, None, MOMENTS[2]),
        (Channel.PORTAL, Purpose.CARE_REMINDER, ContentClass.SENSITIVE, RestrictedTopic.HIV, NOON),
        (Channel.PUSH, Purpose.CARE_REMINDER, ContentClass.GENERIC, None, NOON),
        (Channel.SMS, Purpose.SURVEY, ContentClass.SENSITIVE, None, NOON),
    ]
    drawn = [
        (
            rng.choice(list(Channel)),
            rng.choice(PURPOSES),
            rng.choice(list(ContentClass)),
            rng.choice((None, None, None, *RestrictedTopic)),
            rng.choice(MOMENTS),
        )
        for _ in range(count - len(fixed))
    ]
    return [*fixed, *drawn]


@pytest.mark.parametrize("seed", [11, 23])
def test_contact_decisions_agree_with_may_contact_for_every_patient(seed: int) -> None:
    rng = random.Random(seed)
    patients = varied_population(50, seed=seed)
    seen: Counter[Reason] = Counter()
    for n, (channel, purpose, content_class, topic, at) in enumerate(_asks(rng, 16)):
        # Both shapes of population: a queryset, and a list of ids.
        population = Patient.objects.all() if n % 2 else [p.pk for p in patients]
        bulk = contact_decisions(
            population,
            channel=channel,
            purpose=purpose,
            content_class=content_class,
            at=at,
            topic=topic,
        )
        one_by_one = {
            p.pk: may_contact(p, channel, purpose, content_class, at, topic=topic) for p in patients
        }
        assert bulk == one_by_one, (channel, purpose, content_class, topic, at)
        seen.update(decision.reason for decision in bulk.values())
    # The population and asks reach every rule, so the agreement covers each of them.
    assert set(seen) == set(Reason), set(Reason) - set(seen)


def _note(recipient: Recipient) -> Rendered:
    name = recipient.preferred_name or recipient.given_name
    return Rendered(body=f"{name}, you are due for a screening. Reply STOP to opt out.")


def _campaign(population: object, key: str = "crc-recall-2026") -> object:
    return campaign_enqueue(
        patients=population,  # type: ignore[arg-type]
        template_key="care-gap-recall",
        channel=Channel.SMS,
        purpose=Purpose.CARE_REMINDER,
        content_class=ContentClass.GENERIC,
        at=NOON,
        campaign_key=key,
        render=_note,
        template_version=2,
    )


def test_a_campaign_stores_each_decision_once_and_a_rerun_writes_nothing() -> None:
    patients = varied_population(60, seed=5)
    decisions = contact_decisions(
        Patient.objects.all(),
        channel=Channel.SMS,
        purpose=Purpose.CARE_REMINDER,
        content_class=ContentClass.GENERIC,
        at=NOON,
    )

    run = _campaign(Patient.objects.all())

    expected = Counter(str(d.reason) for d in decisions.values())
    assert run.counts == expected and run.already == 0  # type: ignore[attr-defined]
    assert Message.objects.count() == len(patients)
    for patient in patients:
        decision: Decision = decisions[patient.pk]
        message = Message.objects.get(
            idempotency_key=campaign_idempotency_key("crc-recall-2026", patient.pk)
        )
        assert message.patient_id == patient.pk
        assert message.scheduled_reason == decision.reason
        assert (message.template_id, message.template_version) == ("care-gap-recall", 2)
        if decision.allowed or decision.retry_at is not None:
            assert message.status == MessageStatus.QUEUED
            assert message.next_attempt_at == (decision.retry_at or NOON)
            assert message.address == address_for(patient=patient, channel=Channel.SMS)
            name = patient.preferred_name or patient.given_name
            assert message.body.startswith(f"{name}, you are due")
            assert message.language == patient.preferred_language
        else:
            # Withheld, visibly, with its reason; nothing of the patient is copied.
            assert message.status == MessageStatus.WITHHELD
            assert (message.address, message.body) == ("", "")
    assert expected["allowed"] and len(expected) >= 4

    again = _campaign([p.pk for p in patients])

    assert again.written == 0 and again.already == len(patients)  # type: ignore[attr-defined]
    assert Message.objects.count() == len(patients)
    events = AuditEvent.objects.filter(action="message.enqueue", resource_type="campaign")
    assert events.count() == 2  # one per run, not one per message
    assert all(event.patient_id is None for event in events)
    [first] = [event for event in events if "already=0" in event.fields]
    assert f"allowed={expected['allowed']}" in first.fields
    assert not any("Given" in f or "+1" in f for e in events for f in e.fields)


def test_a_campaign_over_part_of_the_population_leaves_the_rest_alone() -> None:
    patients = varied_population(12, seed=3)
    chosen = [p.pk for p in patients[:5]]

    run = _campaign(Patient.objects.filter(pk__in=chosen), key="flu-2026")

    assert run.written == 5  # type: ignore[attr-defined]
    assert set(Message.objects.values_list("patient_id", flat=True)) == set(chosen)


def test_a_campaign_key_that_cannot_fit_the_idempotency_key_is_refused() -> None:
    with pytest.raises(ValueError, match="campaign key"):
        _campaign([uuid.uuid4()], key="x" * 40)


@pytest.mark.usefixtures("vendors")
def test_campaign_messages_reach_the_provider_once_and_withheld_ones_never(
    provider: FakeTwilio,
) -> None:
    # One number as a person typed it: the provider is given E.164.
    mobiles = ["+16175550100", "+16175550101", "+16175550102", "(617) 555-0103"]
    reachable = [reachable_patient(mobile=mobile) for mobile in mobiles]
    silent = reachable_patient(mobile="+16175559999", sms_consent=False)

    _campaign(Patient.objects.all(), key="mammo-2026")
    _campaign(Patient.objects.all(), key="mammo-2026")  # a second run sends nothing more
    outcomes = dispatch_due()
    dispatch_due()

    assert outcomes == {"sent": 4}
    keys = Counter(r.idempotency_key for r in provider.requests)
    assert keys == {campaign_idempotency_key("mammo-2026", p.pk): 1 for p in reachable}
    assert {r.form["To"] for r in provider.requests} == {
        "+16175550100",
        "+16175550101",
        "+16175550102",
        "+16175550103",
    }
    held = Message.objects.get(patient=silent)
    assert (held.status, held.scheduled_reason) == (MessageStatus.WITHHELD, "no_consent")


@pytest.mark.django_db(transaction=True)
def test_a_large_campaign_prepares_its_batches_on_a_second_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer: the campaign makes its batches on one connection")
    # Outside a transaction and past PIPELINE_MIN, a thread prepares the batches (here
    # of three patients) while the run's own connection copies them in.
    monkeypatch.setattr(campaign, "PIPELINE_MIN", 1)
    monkeypatch.setattr(campaign_facts, "ID_CHUNK", {"postgresql": 3, "sqlite": 3})
    patients = [reachable_patient(mobile=f"+1617555{i:04d}") for i in range(8)]
    patients.append(reachable_patient(mobile="+16175559999", sms_consent=False))

    run = _campaign(Patient.objects.all(), key="pipelined")
    again = _campaign(Patient.objects.all(), key="pipelined")

    assert run.counts == {"allowed": 8, "no_consent": 1}  # type: ignore[attr-defined]
    assert (again.written, again.already) == (0, 9)  # type: ignore[attr-defined]
    for patient in patients[:8]:
        message = Message.objects.get(patient=patient)
        assert message.address == address_for(patient=patient, channel=Channel.SMS)
        assert message.body.startswith("Rosa, you are due")
