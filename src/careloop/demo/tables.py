"""The tables the demo loads and the columns it fills, named by model field so a renamed
column follows the model."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from careloop.clinical.models import ClinicalFact
from careloop.consent.models import ChannelOptIn, CommunicationPreference
from careloop.core.bulk import model_field
from careloop.leads.models import Lead
from careloop.patients.models import ContactPoint, Coverage, Patient, PatientIdentifier
from careloop.referrals.models import Referral
from careloop.scheduling.models import Appointment
from careloop.security.fields import BlindIndexField


@dataclass(frozen=True, slots=True)
class TableSpec:
    model: type[models.Model]
    fields: tuple[str, ...]

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def columns(self) -> list[str]:
        return [model_field(self.model, name).column for name in self.fields]


PATIENT = TableSpec(
    Patient,
    (
        "id",
        "given_name",
        "family_name",
        "preferred_name",
        "given_name_bidx",
        "family_name_bidx",
        "birth_date",
        "sex",
        "gender_identity",
        "preferred_language",
        "address_line",
        "city",
        "postal_code",
        "state",
        "time_zone",
        "lifecycle_stage",
        "lifecycle_reason",
        "deceased_on",
        "primary_provider",
        "home_location",
        "created_at",
        "updated_at",
    ),
)
IDENTIFIER = TableSpec(
    PatientIdentifier, ("id", "patient", "system", "kind", "value", "value_bidx")
)
CONTACT = TableSpec(
    ContactPoint,
    (
        "id",
        "patient",
        "system",
        "use",
        "value",
        "value_bidx",
        "rank",
        "verified",
        "can_sms",
        "can_voice",
        "can_email",
    ),
)
COVERAGE = TableSpec(
    Coverage,
    (
        "id",
        "patient",
        "payer_category",
        "payer_name",
        "plan_name",
        "member_id",
        "subscriber_relationship",
        "period_start",
        "period_end",
        "status",
        "rank",
    ),
)
PREFERENCE = TableSpec(
    CommunicationPreference,
    ("patient", "channel_order", "quiet_start", "quiet_end", "do_not_contact", "updated_at"),
)
OPT_IN = TableSpec(ChannelOptIn, ("patient", "channel", "purpose", "opted_in", "updated_at"))
APPOINTMENT = TableSpec(
    Appointment,
    (
        "id",
        "patient",
        "provider",
        "location",
        "appointment_type",
        "start",
        "end",
        "status",
        "source",
        "created_at",
    ),
)
FACT = TableSpec(
    ClinicalFact,
    (
        "patient",
        "kind",
        "system",
        "code",
        "display",
        "status",
        "category",
        "effective_start",
        "effective_end",
        "value_num",
        "value_code",
        "unit",
        "source_system",
        "source_id",
        "source_version",
        "resource_type",
        "part",
        "element",
        "subject_ref",
        "recorded_at",
        "negated",
        "intent",
        "value_system",
        "encounter_ref",
    ),
)
REFERRAL = TableSpec(
    Referral,
    (
        "id",
        "patient",
        "direction",
        "status",
        "specialty",
        "counterpart",
        "reason_system",
        "reason_code",
        "created_at",
        "closed_at",
    ),
)
LEAD = TableSpec(
    Lead,
    (
        "id",
        "given_name",
        "family_name",
        "family_name_bidx",
        "phone",
        "email",
        "source",
        "campaign",
        "interest",
        "status",
        "created_at",
        "converted_patient",
    ),
)
TABLES = (
    PATIENT,
    IDENTIFIER,
    CONTACT,
    COVERAGE,
    PREFERENCE,
    OPT_IN,
    APPOINTMENT,
    FACT,
    REFERRAL,
    LEAD,
)


def _kind(model: type[models.Model], name: str) -> str:
    index = model_field(model, name)
    if not isinstance(index, BlindIndexField):
        raise TypeError(f"{model.__name__}.{name} is not a blind index")
    return index.kind


NAME_KIND = _kind(Patient, "given_name_bidx")
IDENTIFIER_KIND = _kind(PatientIdentifier, "value_bidx")
CONTACT_KIND = _kind(ContactPoint, "value_bidx")
LEAD_NAME_KIND = _kind(Lead, "family_name_bidx")
