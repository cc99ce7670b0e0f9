"""The streaming generator: one `PatientRec` at a time, never the whole panel in memory.

Each patient draws from its own `random.Random` seeded by (seed, index), so patient
#k is the same whatever the batch size, the output format or how many patients come
after it; the practice draws from a stream of its own.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator
from dataclasses import dataclass

from careloop.demo import clinical, engagement, people, visits
from careloop.demo.practice import build_practice
from careloop.demo.records import PatientRec, Practice, ProviderRec

MRN_SYSTEM = "urn:careloop:demo:mrn"


@dataclass(frozen=True, slots=True)
class DemoSpec:
    patients: int
    seed: int
    as_of: datetime.date
    practice_name: str


@dataclass(frozen=True, slots=True)
class _Panels:
    """Providers per location: adults' clinicians and those who also see children."""

    adult: tuple[tuple[ProviderRec, ...], ...]
    pediatric: tuple[tuple[ProviderRec, ...], ...]


def _panels(practice: Practice) -> _Panels:
    adult, pediatric = [], []
    for location in practice.locations:
        here = tuple(p for p in practice.providers if p.location_id == location.id)
        adult.append(tuple(p for p in here if p.specialty != "Pediatrics") or here)
        pediatric.append(tuple(p for p in here if p.pediatric) or here)
    return _Panels(tuple(adult), tuple(pediatric))


def mrn_for(index: int, seed: int) -> str:
    # Index-based, so MRNs are unique without remembering the ones already issued; the
    # seed is in it so that two synthetic practices are two sets of people.
    return f"RB{seed}-{index + 1:08d}"


def _registered(
    rng: random.Random, *, birth: datetime.date, as_of: datetime.date
) -> datetime.datetime:
    days = rng.randint(1, 1095) if rng.random() < 0.25 else rng.randint(1096, 4000)
    day = max(birth, as_of - datetime.timedelta(days=days))
    return datetime.datetime(
        day.year,
        day.month,
        day.day,
        rng.randint(13, 23),
        rng.randint(0, 59),
        rng.randint(0, 59),
        tzinfo=datetime.UTC,
    )


def _lifecycle(
    *,
    conditions: int,
    history: visits.VisitHistory,
    registered: datetime.datetime,
    as_of: datetime.date,
) -> str:
    if (as_of - registered.date()).days < 90 and history.last_fulfilled is None:
        return "onboarding"
    if history.last_fulfilled is None or (as_of - history.last_fulfilled).days > 540:
        return "dormant"
    if history.no_shows_last_year >= 2:
        return "retention_risk"
    return "chronic" if conditions else "preventive"


def generate_patient(
    *, spec: DemoSpec, practice: Practice, panels: _Panels, index: int
) -> PatientRec:
    rng = random.Random(f"careloop-demo:{spec.seed}:{index}")  # noqa: S311 - synthetic data
    as_of = spec.as_of
    patient_id = people.new_uuid(rng)
    person = people.draw_person(rng, as_of=as_of)
    age = people.age_on(person.birth_date, as_of)
    contacts = people.draw_contacts(rng, person=person, index=index, age=age)
    coverages = people.draw_coverage(rng, person=person, age=age, as_of=as_of)
    registered = _registered(rng, birth=person.birth_date, as_of=as_of)
    location = person.state.location
    provider = rng.choice(panels.pediatric[location] if age < 18 else panels.adult[location])
    conditions = clinical.draw_conditions(rng, age=age, birth=person.birth_date, as_of=as_of)
    profile = clinical.draw_profile(rng, age=age, conditions=conditions)
    ctx = visits.VisitContext(
        birth=person.birth_date,
        sex=person.sex,
        payer=coverages[0].category,
        registered=registered.date(),
        conditions=conditions,
        profile=profile,
        provider=provider,
        clinic_time_zone=practice.locations[location].time_zone,
    )
    history = visits.visit_history(rng, ctx=ctx, as_of=as_of)
    facts = history.facts
    facts += clinical.condition_facts(rng, conditions)
    facts += clinical.medication_facts(rng, conditions, as_of=as_of)
    past = clinical.history_facts(
        rng,
        age=age,
        sex=person.sex,
        birth=person.birth_date,
        conditions=conditions,
        as_of=as_of,
    )
    facts += past.facts
    facts += clinical.screening_facts(rng, age=age, sex=person.sex, as_of=as_of, history=past)
    facts += clinical.eye_exam_facts(rng, conditions=conditions, as_of=as_of)
    facts += clinical.immunization_facts(rng, birth=person.birth_date, age=age, as_of=as_of)
    chronic = len(conditions.keys() - {"obesity", "prediabetes"})
    return PatientRec(
        id=patient_id,
        index=index,
        mrn=mrn_for(index, spec.seed),
        given=person.given,
        family=person.family,
        preferred_name=person.preferred_name,
        birth_date=person.birth_date,
        sex=person.sex,
        preferred_language=person.language,
        address_line=person.address_line,
        city=person.city,
        state=person.state.code,
        postal_code=person.postal_code,
        time_zone=person.state.time_zone,
        lifecycle_stage=_lifecycle(
            conditions=chronic, history=history, registered=registered, as_of=as_of
        ),
        primary_provider_id=provider.id,
        home_location_id=practice.locations[location].id,
        created_at=registered,
        identifier_id=people.new_uuid(rng),
        contacts=contacts,
        coverages=coverages,
        preference=engagement.draw_preference(rng, contacts=contacts),
        appointments=tuple(history.appointments),
        facts=tuple(facts),
        referrals=engagement.draw_referrals(
            rng, conditions=conditions, as_of=as_of, requester_id=provider.id
        ),
        leads=engagement.draw_leads(
            rng,
            given=person.given,
            family=person.family,
            contacts=contacts,
            registered=registered,
            as_of=as_of,
            index=index,
        ),
    )


def practice_for(spec: DemoSpec) -> Practice:
    return build_practice(seed=spec.seed, patients=spec.patients, name=spec.practice_name)


def generate(*, spec: DemoSpec, practice: Practice) -> Iterator[PatientRec]:
    """Yield the panel's patients in index order, one at a time."""
    panels = _panels(practice)
    for index in range(spec.patients):
        yield generate_patient(spec=spec, practice=practice, panels=panels, index=index)
