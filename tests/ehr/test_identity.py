"""Who an incoming patient is: `careloop.ehr.identity.patient_upsert`, the one identity
path every feed takes (FHIR files, Bulk Data, HL7 ADT)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from careloop.core import clock
from careloop.ehr.identity import (
    IncomingContact,
    IncomingIdentifier,
    IncomingPatient,
    UpsertOutcome,
    patient_upsert,
)
from careloop.ehr.models import MatchReview, MatchStatus, SourceRecord
from careloop.patients.merge import patient_merge
from careloop.patients.models import (
    ContactPoint,
    IdentifierKind,
    LifecycleStage,
    Patient,
    PatientIdentifier,
    TimelineEvent,
)
from tests.ehr.feed import make_source
from tests.patients.builders import add_contact, make_patient, make_user

pytestmark = pytest.mark.django_db

MRN_SYSTEM = "http://hospital.example.org/mrn"
BORN = datetime.date(1958, 3, 14)


def ana(**changes: object) -> IncomingPatient:
    """Ana Rivera as the hospital's EHR sends her."""
    base = IncomingPatient(
        given_name="Ana",
        family_name="Rivera",
        birth_date=BORN,
        sex="female",
        identifiers=(IncomingIdentifier(MRN_SYSTEM, "MRN-0042", "mrn"),),
        contacts=(
            IncomingContact("phone", "(617) 555-0142", "mobile"),
            IncomingContact("email", "Ana.Rivera@Example.org", "home"),
        ),
        address_line="711 Hand Trail",
        city="Boston",
        state="Massachusetts",
        postal_code="02215",
        preferred_language="es-MX",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_patient_new_to_careloop_is_created_with_normalised_details() -> None:
    source = make_source()
    result = patient_upsert(source=source, source_patient_id="p-1", incoming=ana())
    assert result.outcome == UpsertOutcome.CREATED
    patient = Patient.objects.get(pk=result.patient_id)
    assert (patient.given_name, patient.family_name, patient.birth_date) == ("Ana", "Rivera", BORN)
    assert (patient.address_line, patient.city, patient.state) == ("711 HAND TRL", "BOSTON", "MA")
    assert patient.time_zone == "America/New_York"
    assert patient.preferred_language == "es"
    contacts = {(c.system, c.value, c.can_sms) for c in patient.contact_points.all()}
    assert contacts == {("phone", "+16175550142", True), ("email", "ana.rivera@example.org", False)}
    mrn = patient.identifiers.get()
    assert (mrn.system, mrn.kind, mrn.value) == (MRN_SYSTEM, IdentifierKind.MRN, "MRN-0042")
    record = SourceRecord.objects.get(source=source, resource_type="Patient", resource_id="p-1")
    assert record.patient_id == record.target_id == patient.pk
    assert TimelineEvent.objects.filter(patient=patient, kind="profile").count() == 1


def test_the_same_data_again_changes_nothing() -> None:
    source = make_source()
    first = patient_upsert(source=source, source_patient_id="p-1", incoming=ana())
    events = TimelineEvent.objects.count()
    again = patient_upsert(source=source, source_patient_id="p-1", incoming=ana())
    assert again == dataclasses.replace(first, outcome=UpsertOutcome.UNCHANGED)
    assert TimelineEvent.objects.count() == events
    assert Patient.objects.count() == 1


def test_an_update_changes_the_patient_and_names_the_parts_on_the_timeline() -> None:
    source = make_source()
    first = patient_upsert(source=source, source_patient_id="p-1", incoming=ana())
    moved = ana(address_line="5 Elm Street", city="Austin", state="TX", postal_code="78701")
    result = patient_upsert(source=source, source_patient_id="p-1", incoming=moved)
    assert result == dataclasses.replace(first, outcome=UpsertOutcome.UPDATED)
    patient = Patient.objects.get(pk=first.patient_id)
    assert (patient.address_line, patient.state, patient.time_zone) == (
        "5 ELM ST",
        "TX",
        "America/Chicago",
    )
    summary = TimelineEvent.objects.filter(patient=patient).order_by("-at", "-id").first()
    assert summary is not None
    assert "address, time zone" in summary.summary and "Elm" not in summary.summary


def test_an_identifier_another_source_already_gave_finds_the_same_patient() -> None:
    first = patient_upsert(source=make_source("clinic-a"), source_patient_id="a-9", incoming=ana())
    # The second EHR spells her name differently and has no contact details: the
    # identifier and birth date are enough.
    other = ana(given_name="Anna", contacts=())
    second = patient_upsert(source=make_source("clinic-b"), source_patient_id="b-1", incoming=other)
    assert second.patient_id == first.patient_id
    assert Patient.objects.count() == 1
    assert not MatchReview.objects.exists()


def test_an_identifier_with_another_birth_date_is_queued_for_review_not_merged() -> None:
    first = patient_upsert(source=make_source("clinic-a"), source_patient_id="a-9", incoming=ana())
    other = ana(birth_date=datetime.date(1985, 3, 14))
    second = patient_upsert(source=make_source("clinic-b"), source_patient_id="b-1", incoming=other)
    assert second.outcome == UpsertOutcome.REVIEW
    assert second.patient_id != first.patient_id
    review = MatchReview.objects.get()
    assert (review.incoming_id, review.candidate_id) == (second.patient_id, first.patient_id)
    assert review.reason == "identifier; birth date differs"
    # The identifier stays with the patient who had it.
    assert PatientIdentifier.objects.get().patient_id == first.patient_id


def test_a_strong_demographic_match_is_the_same_patient() -> None:
    known = make_patient("Ana", "Rivera", BORN)
    add_contact(known, "phone", "+16175550142")
    result = patient_upsert(
        source=make_source(), source_patient_id="p-1", incoming=ana(given_name="ANA ")
    )
    assert result.patient_id == known.pk
    assert result.outcome == UpsertOutcome.UPDATED  # the MRN and e-mail were added
    assert set(known.identifiers.values_list("system", flat=True)) == {MRN_SYSTEM}
    assert ContactPoint.objects.filter(patient=known).count() == 2


def test_an_initial_with_a_shared_phone_is_the_same_patient() -> None:
    known = make_patient("A", "Rivera", BORN)
    add_contact(known, "phone", "+16175550142")
    result = patient_upsert(source=make_source(), source_patient_id="p-1", incoming=ana())
    assert result.patient_id == known.pk


def test_name_and_birth_date_alone_make_a_new_record_and_a_review() -> None:
    known = make_patient("Ana", "Rivera", BORN)
    result = patient_upsert(source=make_source(), source_patient_id="p-1", incoming=ana())
    assert result.outcome == UpsertOutcome.REVIEW
    assert result.patient_id != known.pk
    review = MatchReview.objects.get()
    assert review.candidate_id == known.pk and review.status == MatchStatus.OPEN
    assert review.reason == (
        "birth date, family name, given name; no identifier, phone or e-mail agrees"
    )


def test_a_slightly_different_given_name_is_queued_for_review() -> None:
    known = make_patient("Anna", "Rivera", BORN)
    add_contact(known, "phone", "+16175550142")
    result = patient_upsert(source=make_source(), source_patient_id="p-1", incoming=ana())
    assert result.outcome == UpsertOutcome.REVIEW
    reason = MatchReview.objects.get(candidate=known).reason
    assert reason == "birth date, family name, phone or e-mail; given name differs slightly"
    assert "Ana" not in reason and "Rivera" not in reason


def test_twins_sharing_a_phone_are_two_patients() -> None:
    brother = make_patient("Mateo", "Rivera", BORN)
    add_contact(brother, "phone", "+16175550142")
    result = patient_upsert(source=make_source(), source_patient_id="p-1", incoming=ana())
    assert result.outcome == UpsertOutcome.CREATED
    assert Patient.objects.count() == 2 and not MatchReview.objects.exists()


def test_a_patient_nobody_resembles_is_created() -> None:
    make_patient("Ana", "Rivera", datetime.date(1990, 1, 1))
    result = patient_upsert(source=make_source(), source_patient_id="p-1", incoming=ana())
    assert result.outcome == UpsertOutcome.CREATED


def test_two_ids_of_one_source_are_two_patients_even_with_the_same_mrn() -> None:
    # The eCQM test decks: hundreds of distinct test patients share one MRN.
    source = make_source()
    first = patient_upsert(source=source, source_patient_id="t-1", incoming=ana())
    second = patient_upsert(source=source, source_patient_id="t-2", incoming=ana())
    assert first.patient_id != second.patient_id
    assert second.outcome == UpsertOutcome.CREATED
    assert not MatchReview.objects.exists()


def test_a_death_sets_the_date_and_the_lifecycle_stage() -> None:
    source = make_source()
    result = patient_upsert(source=source, source_patient_id="p-1", incoming=ana())
    died = ana(deceased_on=datetime.date(2024, 5, 2), deceased=True)
    assert patient_upsert(source=source, source_patient_id="p-1", incoming=died).outcome == (
        UpsertOutcome.UPDATED
    )
    patient = Patient.objects.get(pk=result.patient_id)
    assert patient.deceased_on == datetime.date(2024, 5, 2)
    assert patient.lifecycle_stage == LifecycleStage.DECEASED
    # A later message that does not mention the death does not undo it.
    patient_upsert(source=source, source_patient_id="p-1", incoming=ana())
    patient.refresh_from_db()
    assert patient.deceased_on == datetime.date(2024, 5, 2)


def test_a_dead_newcomer_is_created_deceased() -> None:
    with clock.frozen(datetime.datetime(2025, 6, 1, 15, tzinfo=datetime.UTC)):
        result = patient_upsert(
            source=make_source(), source_patient_id="p-1", incoming=ana(deceased=True)
        )
    patient = Patient.objects.get(pk=result.patient_id)
    assert patient.deceased_on == datetime.date(2025, 6, 1)
    assert patient.lifecycle_stage == LifecycleStage.DECEASED


def test_after_a_merge_the_source_lands_on_the_surviving_record() -> None:
    source = make_source()
    survivor = make_patient("Ana", "Rivera", BORN)
    result = patient_upsert(
        source=source, source_patient_id="p-1", incoming=ana(identifiers=(), contacts=())
    )
    patient_merge(
        actor=make_user("front_desk"), survivor_id=survivor.pk, duplicate_id=result.patient_id
    )
    again = patient_upsert(
        source=source, source_patient_id="p-1", incoming=ana(city="Cambridge", postal_code="02139")
    )
    assert again.patient_id == survivor.pk
    record = SourceRecord.objects.get(source=source, resource_id="p-1")
    assert record.patient_id == survivor.pk


def test_an_address_that_does_not_parse_is_kept_as_sent() -> None:
    result = patient_upsert(
        source=make_source(),
        source_patient_id="p-1",
        incoming=ana(address_line="Rural Route", city="Nowhere", state="Jalisco", postal_code=""),
    )
    patient = Patient.objects.get(pk=result.patient_id)
    assert (patient.address_line, patient.city, patient.state) == ("Rural Route", "Nowhere", "")
