"""CMS2 Preventive Care and Screening: Screening for Depression and Follow-Up Plan
(CMS2FHIRPCSDepressionScreenAndFollowUp)."""

from __future__ import annotations

from collections.abc import Callable

from careloop.caregaps.dsl import (
    LOINC,
    MP,
    SNOMED,
    Code,
    Facts,
    Row,
    ValueSetRef,
    age_between,
    exists,
    exists_for,
    valueset,
)
from careloop.caregaps.library import (
    ORDER_INTENTS,
    TELEPHONE_VISITS,
    condition,
    encounter,
    medication_request,
    observation,
    procedure,
    service_request,
)
from careloop.caregaps.measure import Closing, Group, Measure
from careloop.caregaps.sql import Cond

ADOLESCENT_DEPRESSION_MEDICATIONS = valueset(
    "Adolescent Depression Medications", "2.16.840.1.113883.3.526.3.1567"
)
ADULT_DEPRESSION_MEDICATIONS = valueset(
    "Adult Depression Medications", "2.16.840.1.113883.3.526.3.1566"
)
BIPOLAR_DISORDER = valueset("Bipolar Disorder", "2.16.840.1.113883.3.67.1.101.1.128")
ENCOUNTER_TO_SCREEN_FOR_DEPRESSION = valueset(
    "Encounter to Screen for Depression", "2.16.840.1.113883.3.600.1916"
)
FOLLOW_UP_FOR_ADOLESCENT_DEPRESSION = valueset(
    "Follow Up for Adolescent Depression", "2.16.840.1.113883.3.526.3.1569"
)
FOLLOW_UP_FOR_ADULT_DEPRESSION = valueset(
    "Follow Up for Adult Depression", "2.16.840.1.113883.3.526.3.1568"
)
MEDICAL_REASON = valueset("Medical Reason", "2.16.840.1.113883.3.526.3.1007")
PHYSICAL_THERAPY_EVALUATION = valueset(
    "Physical Therapy Evaluation", "2.16.840.1.113883.3.526.3.1022"
)
REFERRAL_FOR_ADOLESCENT_DEPRESSION = valueset(
    "Referral for Adolescent Depression", "2.16.840.1.113883.3.526.3.1570"
)
REFERRAL_FOR_ADULT_DEPRESSION = valueset(
    "Referral for Adult Depression", "2.16.840.1.113883.3.526.3.1571"
)
ADOLESCENT_SCREENING = Code("73831-0", LOINC)
ADULT_SCREENING = Code("73832-8", LOINC)
SCREENING_DECLINED = Code("720834000", SNOMED)
SCREENING_NEGATIVE = Code("428171000124102", SNOMED)
SCREENING_POSITIVE = Code("428181000124104", SNOMED)

# A definition: the initial population and five relationships read it.
QUALIFYING_ENCOUNTER_DURING_MEASUREMENT_PERIOD = (
    encounter(ENCOUNTER_TO_SCREEN_FOR_DEPRESSION, PHYSICAL_THERAPY_EVALUATION, TELEPHONE_VISITS)
    .where(lambda e: e.period.during_day(MP), lambda e: e.status_in("finished"))
    .define()
)
QE = QUALIFYING_ENCOUNTER_DURING_MEASUREMENT_PERIOD

INITIAL_POPULATION = age_between(12, None, at=MP.start) & exists(QE)

# ConditionProblemsHealthConcerns: a problem-list item or a health concern.
HISTORY_OF_BIPOLAR_DIAGNOSIS_BEFORE_QUALIFYING_ENCOUNTER = exists(
    condition(BIPOLAR_DISORDER)
    .where(lambda c: c.category_is("problem-list-item") | c.category_is("health-concern"))
    .with_(QE, lambda c, e: c.prevalence.starts_before_day_of(e.start))
)


def _screening(code: Code) -> Facts:
    """[ObservationScreeningAssessment: code] with a qualifying encounter 14 days or
    less after it, a value, final or corrected."""
    return (
        observation(code)
        .where(
            lambda o: o.category_is("survey"),
            lambda o: o.value_is_not_null(),
            lambda o: o.status_in("final", "corrected"),
        )
        .with_(QE, lambda o, e: o.end.within_days_before_day_of(e.start, 14))
    )


def _most_recent_screening(code: Code) -> Facts:
    """Last(screenings sort by start of effective)."""
    return _screening(code).most_recent(lambda o: o.start)


def _follow_up_provided(
    code: Code, medications: ValueSetRef, referrals: ValueSetRef, follow_ups: ValueSetRef
) -> Cond:
    """ "Most Recent ... Screening Positive and Follow Up Provided": the last screening
    is positive, 14 days or less before a qualifying encounter, and a follow-up
    (medication, referral or procedure) belongs to that encounter and to the period."""

    def medication(screen: Row) -> Facts:
        # The medication's own "with": a qualifying encounter 14 days or less after the
        # screening whose period the medication period overlaps after.
        return medication_request(medications).where(
            lambda m: m.status_in("active", "completed"),
            lambda m: m.intent_in(*ORDER_INTENTS),
            lambda m: exists_for(
                m,
                QE,
                lambda e: screen.start.within_days_before_day_of(e.start, 14)
                & m.period.overlaps_after_day(e.period),
            ),
        )

    def authored_after(encounter_row: Row) -> Callable[[Row], Cond]:
        return lambda r: r.recorded.within_days_after_day_of(
            encounter_row.end, 2
        ) & r.recorded.during_day(MP)

    def followed_up(screen: Row, e: Row) -> Cond:
        return (
            exists_for(e, medication(screen), authored_after(e))
            | exists_for(
                e,
                service_request(referrals).where(lambda s: s.status_in("active", "completed")),
                authored_after(e),
            )
            | exists_for(
                e,
                procedure(follow_ups).where(lambda p: p.status_in("completed")),
                lambda p: p.start.during_row(e.period) & p.start.during_day(MP),
            )
        )

    return exists(
        _most_recent_screening(code)
        .where(lambda s: s.value_in(SCREENING_POSITIVE))
        .with_(
            QE,
            lambda s, e: s.start.within_days_before_day_of(e.start, 14) & followed_up(s, e),
        )
    )


def _most_recent_negative(code: Code) -> Cond:
    return exists(_most_recent_screening(code).where(lambda o: o.value_in(SCREENING_NEGATIVE)))


ADOLESCENT_NEGATIVE = _most_recent_negative(ADOLESCENT_SCREENING)
ADULT_NEGATIVE = _most_recent_negative(ADULT_SCREENING)
ADOLESCENT_POSITIVE_AND_FOLLOW_UP = _follow_up_provided(
    ADOLESCENT_SCREENING,
    ADOLESCENT_DEPRESSION_MEDICATIONS,
    REFERRAL_FOR_ADOLESCENT_DEPRESSION,
    FOLLOW_UP_FOR_ADOLESCENT_DEPRESSION,
)
ADULT_POSITIVE_AND_FOLLOW_UP = _follow_up_provided(
    ADULT_SCREENING,
    ADULT_DEPRESSION_MEDICATIONS,
    REFERRAL_FOR_ADULT_DEPRESSION,
    FOLLOW_UP_FOR_ADULT_DEPRESSION,
)
ADOLESCENT_MET = ADOLESCENT_NEGATIVE | ADOLESCENT_POSITIVE_AND_FOLLOW_UP
ADULT_MET = ADULT_NEGATIVE | ADULT_POSITIVE_AND_FOLLOW_UP

NUMERATOR = (
    (age_between(12, 16, at=MP.start) & ADOLESCENT_MET)
    | (age_between(17, 17, at=MP.start) & (ADOLESCENT_MET | ADULT_MET))
    | (age_between(18, None, at=MP.start) & ADULT_MET)
)


def _reason_for_not_screening(code: Code) -> Cond:
    """[ObservationCancelled: code] issued during day of a qualifying encounter, with
    a declined or medical not-done reason."""
    return exists(
        observation(code)
        .cancelled()
        .with_(QE, lambda n, e: n.recorded.during_day(e.period))
        .where(lambda n: n.part("reason", SCREENING_DECLINED, MEDICAL_REASON))
    )


DENOMINATOR_EXCEPTIONS = (
    _reason_for_not_screening(ADOLESCENT_SCREENING) & ~exists(_screening(ADOLESCENT_SCREENING))
) | (_reason_for_not_screening(ADULT_SCREENING) & ~exists(_screening(ADULT_SCREENING)))

MEASURE = Measure(
    id="CMS2",
    title="Preventive Care and Screening: Screening for Depression and Follow-Up Plan",
    url="https://madie.cms.gov/Measure/CMS2FHIRPCSDepressionScreenAndFollowUp",
    closing=(
        Closing(_screening(ADOLESCENT_SCREENING), 12, lambda o: o.start),
        Closing(_screening(ADULT_SCREENING), 12, lambda o: o.start),
    ),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=HISTORY_OF_BIPOLAR_DIAGNOSIS_BEFORE_QUALIFYING_ENCOUNTER,
            denominator_exception=DENOMINATOR_EXCEPTIONS,
            numerator=NUMERATOR,
            exclusion_reasons=(
                ("bipolar", HISTORY_OF_BIPOLAR_DIAGNOSIS_BEFORE_QUALIFYING_ENCOUNTER),
            ),
            declares=(
                "initial_population",
                "denominator",
                "denominator_exclusion",
                "denominator_exception",
                "numerator",
            ),
        ),
    ),
)
