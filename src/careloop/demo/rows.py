"""Demo records as row tuples, ready for COPY or executemany.

Class-I values are sealed with `crypto.seal` bound to (table, column, primary key) and
blind-indexed with `fields.blind_value`, the very calls `EncryptedTextField` and
`BlindIndexField` make in `pre_save`, so the ORM reads these rows as its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from careloop.core.bulk import Adapters, model_field
from careloop.demo import vocabulary as v
from careloop.demo.generate import MRN_SYSTEM
from careloop.demo.records import FactRec, PatientRec, ReferralRec
from careloop.demo.tables import (
    APPOINTMENT,
    CONTACT,
    CONTACT_KIND,
    COVERAGE,
    FACT,
    IDENTIFIER,
    IDENTIFIER_KIND,
    LEAD,
    LEAD_NAME_KIND,
    NAME_KIND,
    OPT_IN,
    PATIENT,
    PREFERENCE,
    REFERRAL,
    TableSpec,
)
from careloop.leads.models import Lead
from careloop.patients.models import ContactPoint, Coverage, Patient, PatientIdentifier
from careloop.security import crypto
from careloop.security.fields import blind_value

SOURCE_SYSTEM = "careloop-demo"
SOURCE_VERSION = "1"
IdMap = dict[uuid.UUID, uuid.UUID]


@dataclass(slots=True)
class Batch:
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    patients: int = 0

    def add(self, spec: TableSpec, row: tuple[Any, ...]) -> None:
        self.rows.setdefault(spec.table, []).append(row)


class Sealer:
    """`crypto.seal` for one (model, field), with the active key version fetched once."""

    def __init__(self, version: int) -> None:
        self.version = version

    def __call__(
        self, model: type[models.Model], name: str, value: str | None, row_id: uuid.UUID
    ) -> bytes | None:
        if value is None:
            return None
        column = model_field(model, name).column
        return crypto.seal(
            value, table=model._meta.db_table, column=column, row_id=row_id, version=self.version
        )


# The FHIR resource each fact kind is exported as (careloop.demo.fhir), whose identity
# (resource type, id, part) the rows carry exactly as `careloop import fhir` would.
RESOURCE_TYPE = {
    "encounter": "Encounter",
    "condition": "Condition",
    "observation": "Observation",
    "procedure": "Procedure",
    "immunization": "Immunization",
    "medication": "MedicationRequest",
    "service_request": "ServiceRequest",
}
# Kinds timed by a FHIR dateTime (effective, performed, occurrence): start and end alike.
_INSTANT_KINDS = frozenset({"observation", "procedure", "immunization"})
REQUEST_KINDS = frozenset({"medication", "service_request"})
# Conditions carry their verification status in `value_code` (careloop.ehr.facts).
CONFIRMED = "confirmed"

Part = tuple[str, str, str, str, float | None, str, str, str]  # element, system, code, ...


def _parts(fact: FactRec) -> list[Part]:
    """(element, system, code, display, value_num, value_code, value_system, unit) per
    coded element, in the order careloop.ehr.facts maps the exported resource."""
    if fact.kind == "condition":
        value: tuple[float | None, str, str, str] = (None, CONFIRMED, "", "")
    elif fact.kind == "observation":
        coded = fact.value_code
        value = (
            fact.value_num,
            coded.code if coded else "",
            coded.system if coded else "",
            fact.unit if fact.value_num is not None else "",
        )
    else:
        value = (None, "", "", "")
    codes = (fact.code, fact.alt) if fact.alt else (fact.code,)
    parts: list[Part] = [("code", c.system, c.code, c.display[:200], *value) for c in codes]
    for comp in fact.components:
        code = comp.code
        parts.append(
            ("component", code.system, code.code, code.display[:200], comp.value, "", "", comp.unit)
        )
    if fact.kind == "encounter":
        parts.append(("class", v.ACT_CODE, fact.category, "", None, "", "", ""))
    if fact.reason:
        r = fact.reason
        parts.append(("reason", r.system, r.code, r.display[:200], None, "", "", ""))
    return parts


def _fact_rows(rec: PatientRec, fact: FactRec, a: Adapters) -> Iterable[tuple[Any, ...]]:
    """The rows `careloop import fhir` makes of the fact's exported resource (less the
    import's own bookkeeping: lastUpdated and content hash)."""
    pid = a.uid(rec.id)
    end = fact.end if fact.end or fact.kind not in _INSTANT_KINDS else fact.start
    if fact.kind in ("condition", "medication", "service_request"):
        recorded = a.dt(fact.recorded or fact.start)
    else:
        recorded = a.dt(fact.recorded)
    start, end = a.dt(fact.start), a.dt(end)
    resource_type, source_id = RESOURCE_TYPE[fact.kind], str(fact.id)
    encounter = str(fact.encounter_id) if fact.encounter_id else ""
    subject = str(rec.id)
    intent = fact.intent or ("order" if fact.kind in REQUEST_KINDS else "")
    for number, part in enumerate(_parts(fact)):
        element, system, code, display, value_num, value_code, value_system, unit = part
        yield (
            pid,
            fact.kind,
            system,
            code,
            display,
            fact.status,
            fact.category,
            start,
            end,
            value_num,
            value_code,
            unit,
            SOURCE_SYSTEM,
            source_id,
            SOURCE_VERSION,
            resource_type,
            number,
            element,
            subject,
            recorded,
            False,
            intent,
            value_system,
            encounter,
        )


def _referral_fact_rows(
    rec: PatientRec, ref: ReferralRec, a: Adapters
) -> Iterable[tuple[Any, ...]]:
    """A referral is exported as a ServiceRequest coded by its category only, which the
    import keeps as a service-request fact: the same here."""
    pid, created = a.uid(rec.id), a.dt(ref.created_at)
    category = v.PATIENT_REFERRAL
    parts = [("code", category.system, category.code, category.display)]
    if ref.reason:
        parts.append(("reason", ref.reason.system, ref.reason.code, ref.reason.display[:200]))
    for number, (element, system, code, display) in enumerate(parts):
        yield (
            pid,
            "service_request",
            system,
            code,
            display,
            v.REFERRAL_FHIR_STATUS[ref.status],
            category.code,
            created,
            None,
            None,
            "",
            "",
            SOURCE_SYSTEM,
            str(ref.id),
            SOURCE_VERSION,
            "ServiceRequest",
            number,
            element,
            str(rec.id),
            created,
            False,
            "order",
            "",
            "",
        )


def _patient_row(rec: PatientRec, *, a: Adapters, seal: Sealer, ids: IdMap) -> tuple[Any, ...]:
    pid = rec.id
    return (
        a.uid(pid),
        seal(Patient, "given_name", rec.given, pid),
        seal(Patient, "family_name", rec.family, pid),
        seal(Patient, "preferred_name", rec.preferred_name, pid),
        blind_value(NAME_KIND, rec.given),
        blind_value(NAME_KIND, rec.family),
        a.day(rec.birth_date),
        rec.sex,
        "",
        rec.preferred_language,
        seal(Patient, "address_line", rec.address_line, pid),
        seal(Patient, "city", rec.city, pid),
        seal(Patient, "postal_code", rec.postal_code, pid),
        rec.state,
        rec.time_zone,
        rec.lifecycle_stage,
        "",
        None,
        a.uid(ids[rec.primary_provider_id]),
        a.uid(ids[rec.home_location_id]),
        a.dt(rec.created_at),
        a.dt(rec.created_at),
    )


def _reach_rows(batch: Batch, rec: PatientRec, *, a: Adapters, seal: Sealer) -> None:
    """Identifier, contact points, coverage, preference and opt-ins."""
    pid, iid = a.uid(rec.id), rec.identifier_id
    mrn = seal(PatientIdentifier, "value", rec.mrn, iid)
    batch.add(
        IDENTIFIER, (a.uid(iid), pid, MRN_SYSTEM, "mrn", mrn, blind_value(IDENTIFIER_KIND, rec.mrn))
    )
    for c in rec.contacts:
        value = seal(ContactPoint, "value", c.value, c.id)
        index = blind_value(CONTACT_KIND, c.value)
        batch.add(
            CONTACT,
            (
                a.uid(c.id),
                pid,
                c.system,
                c.use,
                value,
                index,
                c.rank,
                c.verified,
                c.can_sms,
                c.can_voice,
                c.can_email,
            ),
        )
    for cov in rec.coverages:
        member = seal(Coverage, "member_id", cov.member_id, cov.id)
        batch.add(
            COVERAGE,
            (
                a.uid(cov.id),
                pid,
                cov.category,
                cov.payer_name,
                cov.plan_name,
                member,
                "self",
                a.day(cov.period_start),
                a.day(cov.period_end),
                cov.status,
                cov.rank,
            ),
        )
    pref, updated = rec.preference, a.dt(rec.created_at)
    batch.add(
        PREFERENCE,
        (
            pid,
            a.js(list(pref.channel_order)),
            a.tm(pref.quiet_start),
            a.tm(pref.quiet_end),
            pref.do_not_contact,
            updated,
        ),
    )
    for opt in pref.opt_ins:
        batch.add(OPT_IN, (pid, opt.channel, opt.purpose, opt.opted_in, updated))


def _care_rows(batch: Batch, rec: PatientRec, *, a: Adapters, ids: IdMap) -> None:
    """Appointments, clinical facts and referrals: coded, class-II rows."""
    pid = a.uid(rec.id)
    for ap in rec.appointments:
        batch.add(
            APPOINTMENT,
            (
                a.uid(ap.id),
                pid,
                a.uid(ids[ap.provider_id]),
                a.uid(ids[ap.location_id]),
                ap.type_code,
                a.dt(ap.start),
                a.dt(ap.end),
                ap.status,
                "demo",
                a.dt(ap.created_at),
            ),
        )
    for fact in rec.facts:
        for row in _fact_rows(rec, fact, a):
            batch.add(FACT, row)
    for ref in rec.referrals:
        for row in _referral_fact_rows(rec, ref, a):
            batch.add(FACT, row)
        reason_system, reason_code = (
            (ref.reason.system, ref.reason.code) if ref.reason else ("", "")
        )
        batch.add(
            REFERRAL,
            (
                a.uid(ref.id),
                pid,
                ref.direction,
                ref.status,
                ref.specialty,
                ref.counterpart,
                reason_system,
                reason_code,
                a.dt(ref.created_at),
                a.dt(ref.closed_at),
            ),
        )


def _lead_rows(batch: Batch, rec: PatientRec, *, a: Adapters, seal: Sealer) -> None:
    for lead in rec.leads:
        lid = lead.id
        batch.add(
            LEAD,
            (
                a.uid(lid),
                seal(Lead, "given_name", lead.given, lid),
                seal(Lead, "family_name", lead.family, lid),
                blind_value(LEAD_NAME_KIND, lead.family),
                seal(Lead, "phone", lead.phone, lid),
                seal(Lead, "email", lead.email, lid),
                lead.source,
                lead.campaign,
                lead.interest,
                lead.status,
                a.dt(lead.created_at),
                a.uid(rec.id) if lead.converted else None,
            ),
        )


def add_patient(batch: Batch, rec: PatientRec, *, a: Adapters, seal: Sealer, ids: IdMap) -> None:
    """Add every row of one patient to the batch (`ids` maps generated practice ids to stored)."""
    batch.add(PATIENT, _patient_row(rec, a=a, seal=seal, ids=ids))
    _reach_rows(batch, rec, a=a, seal=seal)
    _care_rows(batch, rec, a=a, ids=ids)
    _lead_rows(batch, rec, a=a, seal=seal)
    batch.patients += 1
