"""The record handlers (careloop.ehr.records), driven as the import drives them, with
US Core resources in the shapes Synthea and the eCQM test decks use."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from careloop.consent.ledger import consent_current
from careloop.consent.models import ConsentKind, ConsentRecord, ConsentStatus
from careloop.ehr.handlers import Reject, WaitForPatient
from careloop.ehr.models import MatchReview
from careloop.patients.models import (
    Coverage,
    IdentifierKind,
    Patient,
    PatientRelationship,
    PayerCategory,
)
from careloop.scheduling.models import Appointment, AppointmentStatus, Location, Provider
from tests.ehr.feed import Feed, make_source

pytestmark = pytest.mark.django_db

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
PID = "e6dde18e-af01-4f2f-b74a-1ec7d0368f93"

# A Synthea patient as the SMART Bulk Data server exports it (trimmed extensions).
SYNTHEA_PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": PID,
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
            "valueString": "Ester Castañeda",
        }
    ],
    "identifier": [
        {"system": "https://github.com/synthetichealth/synthea", "value": PID},
        {
            "type": {
                "coding": [{"system": V2_0203, "code": "MR"}],
                "text": "Medical Record Number",
            },
            "system": "http://hospital.smarthealthit.org",
            "value": PID,
        },
        {
            "type": {"coding": [{"system": V2_0203, "code": "SS"}]},
            "system": "http://hl7.org/fhir/sid/us-ssn",
            "value": "999-88-8662",
        },
        {
            "type": {"coding": [{"system": V2_0203, "code": "DL"}]},
            "system": "urn:oid:2.16.840.1.113883.4.3.25",
            "value": "S99927077",
        },
    ],
    "name": [{"use": "official", "family": "Sarabia", "given": ["Ramón"]}],
    "telecom": [{"system": "phone", "value": "555-504-7600", "use": "home"}],
    "gender": "male",
    "birthDate": "2002-09-09",
    "address": [
        {
            "line": ["711 Hand Trail"],
            "city": "Boston",
            "state": "Massachusetts",
            "postalCode": "02215",
            "country": "US",
        }
    ],
    "communication": [
        {
            "language": {
                "coding": [{"system": "urn:ietf:bcp:47", "code": "es", "display": "Spanish"}]
            }
        }
    ],
}
SYNTHEA_PRACTITIONER: dict[str, Any] = {
    "resourceType": "Practitioner",
    "id": "40d52fa0-bd58-301d-aa9d-288266360e46",
    "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999999679"}],
    "active": True,
    "name": [{"family": "Cremin", "given": ["Shay"], "prefix": ["Dr."]}],
    "gender": "female",
}
LOCATION: dict[str, Any] = {
    "resourceType": "Location",
    "id": "loc-1",
    "status": "active",
    "name": "BAYSTATE MEDICAL CENTER",
    "telecom": [{"system": "phone", "value": "4137940000"}],
    "address": {
        "line": ["759 CHESTNUT STREET"],
        "city": "SPRINGFIELD",
        "state": "MA",
        "postalCode": "01199",
    },
}
# An eCQM test deck coverage (CMS122): the payor is the patient herself.
ECQM_COVERAGE: dict[str, Any] = {
    "resourceType": "Coverage",
    "id": "37586d01-3369-4e97-b3ed-cb764b74fb33",
    "identifier": [{"system": "http://benefitsinc.com/certificate", "value": "12345"}],
    "status": "active",
    "type": {
        "coding": [
            {"system": "https://nahdo.org/sopt", "code": "59", "display": "Other Private Insurance"}
        ]
    },
    "policyHolder": {"reference": f"Patient/{PID}"},
    "subscriberId": "12191",
    "beneficiary": {"reference": f"Patient/{PID}"},
    "relationship": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                "code": "self",
            }
        ]
    },
    "period": {"start": "2023-01-01T06:00:00.000Z", "end": "2023-12-31T11:06:01.000Z"},
    "payor": [{"reference": f"Patient/{PID}", "display": "Ramón Sarabia"}],
    "order": 2,
}
APPOINTMENT: dict[str, Any] = {
    "resourceType": "Appointment",
    "id": "appt-1",
    "status": "booked",
    "appointmentType": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v2-0276",
                "code": "ROUTINE",
                "display": "Routine appointment",
            }
        ]
    },
    "start": "2026-04-02T14:30:00-04:00",
    "end": "2026-04-02T15:00:00-04:00",
    "participant": [
        {"actor": {"reference": f"Patient/{PID}"}, "status": "accepted"},
        {
            "actor": {"reference": f"Practitioner/{SYNTHEA_PRACTITIONER['id']}"},
            "status": "accepted",
        },
        {"actor": {"reference": "Location/loc-1"}, "status": "accepted"},
    ],
}


def changed(resource: dict[str, Any], **values: Any) -> dict[str, Any]:
    new = copy.deepcopy(resource)
    new.update(values)
    return new


@pytest.fixture
def feed() -> Feed:
    return Feed.open()


def test_a_synthea_patient_becomes_a_careloop_patient(feed: Feed) -> None:
    result = feed.send(SYNTHEA_PATIENT)
    assert result.changed and result.target_id == result.patient_id
    patient = Patient.objects.get(pk=result.patient_id)
    assert (patient.given_name, patient.family_name, patient.sex) == ("Ramón", "Sarabia", "male")
    assert (patient.state, patient.time_zone, patient.preferred_language) == (
        "MA",
        "America/New_York",
        "es",
    )
    kept = {(i.system, i.kind) for i in patient.identifiers.all()}
    # The MRN and the EHR's own id; never the SSN or driving licence.
    assert kept == {
        ("http://hospital.smarthealthit.org", IdentifierKind.MRN),
        ("https://github.com/synthetichealth/synthea", IdentifierKind.EXTERNAL),
    }
    phone = patient.contact_points.get()
    assert (phone.value, phone.use, phone.can_sms, phone.can_voice) == (
        "+15555047600",
        "home",
        False,
        True,
    )


def test_the_same_patient_under_a_new_version_is_unchanged(feed: Feed) -> None:
    feed.send(SYNTHEA_PATIENT)
    again = feed.send(changed(SYNTHEA_PATIENT, meta={"versionId": "2"}))
    assert not again.changed
    deceased = feed.send(changed(SYNTHEA_PATIENT, deceasedDateTime="2020-02-01T10:00:00-05:00"))
    assert deceased.changed
    assert Patient.objects.get().deceased_on == datetime.date(2020, 2, 1)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"birthDate": None}, "Patient: birthDate missing"),
        ({"birthDate": "2002-09"}, "Patient: birthDate not a full date"),
        ({"name": []}, "Patient: name missing"),
    ],
)
def test_an_unusable_patient_is_rejected_with_a_reason_without_phi(
    feed: Feed, edit: dict[str, Any], reason: str
) -> None:
    resource = {k: v for k, v in changed(SYNTHEA_PATIENT, **edit).items() if v is not None}
    with pytest.raises(Reject) as rejected:
        feed.send(resource)
    assert str(rejected.value) == reason
    assert not Patient.objects.exists()


def test_a_practitioner_becomes_a_provider_at_the_sources_ehr_location(feed: Feed) -> None:
    result = feed.send(SYNTHEA_PRACTITIONER)
    provider = Provider.objects.get(pk=result.target_id)
    assert (provider.npi, provider.display_name) == ("9999999679", "Dr. Shay Cremin")
    assert provider.location.name == f"{feed.source.name} (EHR)"
    assert not feed.send(changed(SYNTHEA_PRACTITIONER, meta={"versionId": "2"})).changed
    without_npi = changed(SYNTHEA_PRACTITIONER, id="nurse-1", identifier=[])
    assert feed.send(without_npi).target_id is None
    assert Provider.objects.count() == 1


def test_a_location_and_a_practitioner_role_place_the_provider(feed: Feed) -> None:
    location = Location.objects.get(pk=feed.send(LOCATION).target_id)
    assert (location.name, location.time_zone, location.phone) == (
        "BAYSTATE MEDICAL CENTER",
        "America/New_York",
        "4137940000",
    )
    assert location.address == "759 CHESTNUT STREET, SPRINGFIELD, MA 01199"
    provider_id = feed.send(SYNTHEA_PRACTITIONER).target_id
    role = {
        "resourceType": "PractitionerRole",
        "id": "role-1",
        "practitioner": {"reference": f"Practitioner/{SYNTHEA_PRACTITIONER['id']}"},
        "location": [{"reference": "Location/loc-1"}],
        "specialty": [
            {"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "208D00000X",
                         "display": "General Practice"}]}
        ],
    }  # fmt: skip
    assert feed.send(role).target_id == provider_id
    provider = Provider.objects.get(pk=provider_id)
    assert (provider.location_id, provider.specialty) == (location.pk, "General Practice")


def test_a_role_for_a_practitioner_careloop_does_not_know_is_rejected(feed: Feed) -> None:
    role = {
        "resourceType": "PractitionerRole",
        "id": "role-1",
        "practitioner": {"reference": "Practitioner/unknown"},
    }
    with pytest.raises(Reject, match="not a careloop provider"):
        feed.send(role)


def test_an_organization_is_remembered_only(feed: Feed) -> None:
    result = feed.send({"resourceType": "Organization", "id": "org-1", "name": "NOBLE HOSPITAL"})
    assert result.target_id is None


def test_a_coverage_waits_for_its_patient_then_lands(feed: Feed) -> None:
    with pytest.raises(WaitForPatient) as waiting:
        feed.send(ECQM_COVERAGE)
    assert waiting.value.source_patient_id == PID
    patient_id = feed.send(SYNTHEA_PATIENT).patient_id
    result = feed.send(ECQM_COVERAGE)
    coverage = Coverage.objects.get(pk=result.target_id)
    assert coverage.patient_id == patient_id == result.patient_id
    assert (coverage.payer_category, coverage.member_id, coverage.rank) == (
        PayerCategory.COMMERCIAL,
        "12191",
        2,
    )
    # The payor is the patient: her name must not become the payer's (a plain column).
    assert coverage.payer_name == "Other Private Insurance"
    assert (coverage.period_start, coverage.period_end) == (
        datetime.date(2023, 1, 1),
        datetime.date(2023, 12, 31),
    )
    assert not feed.send(changed(ECQM_COVERAGE, meta={"versionId": "2"})).changed
    cancelled = feed.send(changed(ECQM_COVERAGE, status="cancelled"))
    assert cancelled.target_id == coverage.pk and cancelled.changed
    assert Coverage.objects.get().status == "cancelled"


def test_a_medicaid_coverage_is_categorised_by_its_payment_typology(feed: Feed) -> None:
    feed.send(SYNTHEA_PATIENT)
    medicaid = changed(
        ECQM_COVERAGE,
        type={"coding": [{"system": "https://nahdo.org/sopt", "code": "2", "display": "MEDICAID"}]},
        payor=[{"reference": "Organization/org-9", "display": "MassHealth"}],
    )
    coverage = Coverage.objects.get(pk=feed.send(medicaid).target_id)
    assert (coverage.payer_category, coverage.payer_name) == (PayerCategory.MEDICAID, "MassHealth")


def _practice(feed: Feed) -> None:
    feed.send(SYNTHEA_PATIENT)
    feed.send(LOCATION)
    feed.send(SYNTHEA_PRACTITIONER)


def test_an_appointment_is_booked_with_its_provider_place_and_type(feed: Feed) -> None:
    _practice(feed)
    result = feed.send(APPOINTMENT)
    appointment = Appointment.objects.get(pk=result.target_id)
    assert appointment.source == "ehr"
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.provider.npi == "9999999679"
    assert appointment.location.name == "BAYSTATE MEDICAL CENTER"
    assert appointment.appointment_type_id == "ehr-routine"
    assert appointment.start == datetime.datetime(2026, 4, 2, 18, 30, tzinfo=datetime.UTC)
    assert appointment.end - appointment.start == datetime.timedelta(minutes=30)


@pytest.mark.parametrize(
    ("fhir", "careloop"),
    [
        ("arrived", AppointmentStatus.CHECKED_IN),
        ("fulfilled", AppointmentStatus.FULFILLED),
        ("cancelled", AppointmentStatus.CANCELLED),
        ("noshow", AppointmentStatus.NO_SHOW),
    ],
)
def test_an_appointment_status_follows_the_ehr(
    feed: Feed, fhir: str, careloop: AppointmentStatus
) -> None:
    _practice(feed)
    first = feed.send(APPOINTMENT)
    later = feed.send(changed(APPOINTMENT, status=fhir, meta={"versionId": "2"}))
    assert later.target_id == first.target_id and later.changed
    assert Appointment.objects.get().status == careloop


def test_an_appointment_waits_for_its_patient(feed: Feed) -> None:
    feed.send(LOCATION)
    feed.send(SYNTHEA_PRACTITIONER)
    with pytest.raises(WaitForPatient):
        feed.send(APPOINTMENT)
    assert not Appointment.objects.exists()


def test_an_appointment_without_a_known_practitioner_is_rejected(feed: Feed) -> None:
    feed.send(SYNTHEA_PATIENT)
    with pytest.raises(Reject, match="Appointment: practitioner is not a careloop provider"):
        feed.send(APPOINTMENT)


def test_a_proposed_appointment_is_only_remembered(feed: Feed) -> None:
    _practice(feed)
    assert feed.send(changed(APPOINTMENT, status="proposed")).target_id is None
    assert not Appointment.objects.exists()


def _related(mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "RelatedPerson",
        "id": "rp-1",
        "patient": {"reference": f"Patient/{PID}"},
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": "http://hospital.smarthealthit.org",
                "value": mrn,
            }
        ],
        "relationship": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                         "code": "MTH"}]}
        ],
        "name": [{"family": "Castañeda", "given": ["Ester"]}],
    }  # fmt: skip


def test_a_related_person_who_is_a_patient_becomes_a_relationship(feed: Feed) -> None:
    child = feed.send(SYNTHEA_PATIENT).patient_id
    mother = changed(
        SYNTHEA_PATIENT,
        id="mother-1",
        identifier=[_related("MRN-MOTHER")["identifier"][0]],
        name=[{"use": "official", "family": "Castañeda", "given": ["Ester"]}],
        birthDate="1975-01-20",
    )
    mother_id = feed.send(mother).patient_id
    result = feed.send(_related("MRN-MOTHER"))
    relationship = PatientRelationship.objects.get(pk=result.target_id)
    assert (relationship.patient_id, relationship.related_patient_id, relationship.code) == (
        child,
        mother_id,
        "parent",
    )
    assert not feed.send(changed(_related("MRN-MOTHER"), meta={"versionId": "2"})).changed


def test_a_related_person_who_is_not_a_patient_is_only_remembered(feed: Feed) -> None:
    patient_id = feed.send(SYNTHEA_PATIENT).patient_id
    result = feed.send(_related("MRN-NOBODY"))
    assert (result.target_id, result.patient_id) == (None, patient_id)
    assert not PatientRelationship.objects.exists()


def test_a_care_team_is_remembered_with_its_patient(feed: Feed) -> None:
    patient_id = feed.send(SYNTHEA_PATIENT).patient_id
    team = {
        "resourceType": "CareTeam",
        "id": "ct-1",
        "status": "active",
        "subject": {"reference": f"Patient/{PID}"},
        "participant": [{"member": {"reference": "Practitioner/x", "display": "Dr. Jani Swift"}}],
    }
    assert feed.send(team) == feed.send(team).__class__(None, patient_id)


def _consent(status: str = "active", **values: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": "consent-1",
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "treatment",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{PID}"},
        "dateTime": "2024-02-01T09:00:00-05:00",
        **values,
    }


def test_a_treatment_consent_goes_to_the_ledger_once(feed: Feed) -> None:
    with pytest.raises(WaitForPatient):
        feed.send(_consent())
    patient = Patient.objects.get(pk=feed.send(SYNTHEA_PATIENT).patient_id)
    first = feed.send(_consent())
    record = ConsentRecord.objects.get(pk=first.target_id)
    assert (record.kind, record.status, record.capture_method) == (
        ConsentKind.TREATMENT,
        ConsentStatus.GRANTED,
        "imported",
    )
    assert not feed.send(_consent(meta={"versionId": "2"})).changed
    revoked = feed.send(_consent("inactive", dateTime="2024-06-01T09:00:00-04:00"))
    assert revoked.changed and revoked.target_id != first.target_id
    at = datetime.datetime(2024, 7, 1, tzinfo=datetime.UTC)
    assert consent_current(patient=patient, kind=ConsentKind.TREATMENT, at=at) == (
        ConsentStatus.REVOKED
    )
    assert ConsentRecord.objects.count() == 2


def test_a_consent_whose_kind_is_unclear_is_only_remembered(feed: Feed) -> None:
    patient_id = feed.send(SYNTHEA_PATIENT).patient_id
    adr = _consent(
        scope={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                           "code": "adr"}]}
    )  # fmt: skip
    assert feed.send(adr) == feed.send(adr).__class__(None, patient_id, changed=False)
    assert not ConsentRecord.objects.exists()


def test_a_patient_like_one_careloop_knows_is_reviewed_not_merged(feed: Feed) -> None:
    feed.send(SYNTHEA_PATIENT)
    # The same person from another EHR, without the identifiers or phone: review.
    other = Feed.open(make_source("other-ehr"))
    stripped = changed(SYNTHEA_PATIENT, identifier=[], telecom=[])
    other.send(stripped)
    assert Patient.objects.count() == 2
    assert MatchReview.objects.count() == 1
