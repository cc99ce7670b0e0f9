"""CMS165 Controlling High Blood Pressure (CMS165FHIRControllingHighBloodPressure)."""

from __future__ import annotations

from careloop.caregaps.dsl import (
    LOINC,
    MP,
    Code,
    Row,
    Span,
    age_between,
    exists,
    exists_for,
    months_after_start,
    valueset,
)
from careloop.caregaps.library import (
    ENCOUNTER_INPATIENT,
    FRAILTY,
    HAS_HOSPICE_SERVICES,
    HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD,
    HOSPICE,
    IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME,
    IS_AGE_66_TO_80_WITH_ADVANCED_ILLNESS_AND_FRAILTY_OR_81_OR_OLDER_WITH_FRAILTY,
    NURSING_HOME,
    PALLIATIVE,
    QUALIFYING_ENCOUNTERS,
    RESULT_STATUSES,
    condition,
    encounter,
    is_encounter_performed,
    is_procedure_performed,
    observation,
    procedure,
    verified,
)
from careloop.caregaps.measure import Closing, Group, Measure
from careloop.caregaps.sql import Cond

CKD_STAGE_5 = valueset("Chronic Kidney Disease, Stage 5", "2.16.840.1.113883.3.526.3.1002")
DIALYSIS_SERVICES = valueset("Dialysis Services", "2.16.840.1.113883.3.464.1003.109.12.1013")
ED_VISIT = valueset(
    "Emergency Department Evaluation and Management Visit",
    "2.16.840.1.113883.3.464.1003.101.12.1010",
)
END_STAGE_RENAL_DISEASE = valueset("End Stage Renal Disease", "2.16.840.1.113883.3.526.3.353")
ESRD_MONTHLY_OUTPATIENT_SERVICES = valueset(
    "ESRD Monthly Outpatient Services", "2.16.840.1.113883.3.464.1003.109.12.1014"
)
ESSENTIAL_HYPERTENSION = valueset(
    "Essential Hypertension", "2.16.840.1.113883.3.464.1003.104.12.1011"
)
KIDNEY_TRANSPLANT = valueset("Kidney Transplant", "2.16.840.1.113883.3.464.1003.109.12.1012")
KIDNEY_TRANSPLANT_RECIPIENT = valueset(
    "Kidney Transplant Recipient", "2.16.840.1.113883.3.464.1003.109.12.1029"
)
PREGNANCY = valueset("Pregnancy", "2.16.840.1.113883.3.526.3.378")
BLOOD_PRESSURE_PANEL = Code("85354-9", LOINC)  # USCoreBloodPressureProfile
DIASTOLIC = Code("8462-4", LOINC)
SYSTOLIC = Code("8480-6", LOINC)

ESSENTIAL_HYPERTENSION_DIAGNOSIS = exists(
    condition(ESSENTIAL_HYPERTENSION).where(
        verified,
        lambda c: c.prevalence.overlaps(Span(MP.start, months_after_start(6), high_open=True)),
    )
)

INITIAL_POPULATION = (
    age_between(18, 85) & ESSENTIAL_HYPERTENSION_DIAGNOSIS & exists(QUALIFYING_ENCOUNTERS)
)

PREGNANCY_OR_RENAL_DIAGNOSIS = exists(
    condition(PREGNANCY, END_STAGE_RENAL_DISEASE, KIDNEY_TRANSPLANT_RECIPIENT, CKD_STAGE_5).where(
        verified, lambda c: c.prevalence.overlaps(MP)
    )
)
END_STAGE_RENAL_DISEASE_PROCEDURES = exists(
    procedure(KIDNEY_TRANSPLANT, DIALYSIS_SERVICES).where(
        is_procedure_performed, lambda p: p.period.ends_on_or_before(MP.end)
    )
)
END_STAGE_RENAL_DISEASE_ENCOUNTER = exists(
    encounter(ESRD_MONTHLY_OUTPATIENT_SERVICES).where(
        is_encounter_performed, lambda e: e.start.on_or_before(MP.end)
    )
)

DENOMINATOR_EXCLUSIONS = (
    HAS_HOSPICE_SERVICES
    | PREGNANCY_OR_RENAL_DIAGNOSIS
    | END_STAGE_RENAL_DISEASE_PROCEDURES
    | END_STAGE_RENAL_DISEASE_ENCOUNTER
    | IS_AGE_66_TO_80_WITH_ADVANCED_ILLNESS_AND_FRAILTY_OR_81_OR_OLDER_WITH_FRAILTY
    | IS_AGE_66_OR_OLDER_LIVING_LONG_TERM_IN_A_NURSING_HOME
    | HAS_PALLIATIVE_CARE_IN_THE_MEASUREMENT_PERIOD
)

DISQUALIFYING_ENCOUNTER = encounter(ENCOUNTER_INPATIENT, ED_VISIT).where(is_encounter_performed)

NON_OUTPATIENT_CLASSES = ("EMER", "IMP", "ACUTE", "NONAC", "PRENC", "SS")


def _not_during_disqualifying_encounter(bp: Row) -> Cond:
    return ~exists_for(bp, DISQUALIFYING_ENCOUNTER, lambda e: bp.latest.during_day(e.period))


def _own_encounter_is_outpatient(bp: Row) -> Cond:
    """not (BloodPressure.encounter.getEncounter().class.code in {...}): the reading
    names its encounter, which careloop holds, of another class."""
    return exists_for(
        bp,
        encounter(),
        lambda e: e.is_encounter_of(bp) & ~e.category_in(*NON_OUTPATIENT_CLASSES),
    ) & bp.latest.during_day(MP)


# "Qualifying ... Blood Pressure Reading": the union of readings not taken during an
# inpatient or emergency encounter and readings in the period whose own encounter is
# not of an inpatient or emergency class.
QUALIFYING_BLOOD_PRESSURE_READING = (
    observation(BLOOD_PRESSURE_PANEL)
    .where(
        lambda o: o.category_is("vital-signs"),
        lambda o: o.status_in(*RESULT_STATUSES),
        lambda o: _not_during_disqualifying_encounter(o) | _own_encounter_is_outpatient(o),
    )
    .define()
)
ON_MOST_RECENT_BLOOD_PRESSURE_DAY = QUALIFYING_BLOOD_PRESSURE_READING.on_most_recent_day().define()


def _lowest_reading_on_most_recent_day_below(component: Code, limit: float) -> Cond:
    """First(readings that day, by the component's value, nulls first) < limit."""
    return exists(
        ON_MOST_RECENT_BLOOD_PRESSURE_DAY.where(
            lambda o: o.part("component", component, where=lambda c: c.value_num("<", limit))
        )
    ) & ~exists(
        ON_MOST_RECENT_BLOOD_PRESSURE_DAY.where(
            lambda o: ~o.part("component", component, where=lambda c: ~c.quantity_is_null())
        )
    )


NUMERATOR = _lowest_reading_on_most_recent_day_below(
    SYSTOLIC, 140
) & _lowest_reading_on_most_recent_day_below(DIASTOLIC, 90)

MEASURE = Measure(
    id="CMS165",
    title="Controlling High Blood Pressure",
    url="https://madie.cms.gov/Measure/CMS165FHIRControllingHighBloodPressure",
    closing=(Closing(QUALIFYING_BLOOD_PRESSURE_READING, 12),),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=DENOMINATOR_EXCLUSIONS,
            numerator=NUMERATOR,
            exclusion_reasons=(
                HOSPICE,
                ("pregnancy_or_renal", PREGNANCY_OR_RENAL_DIAGNOSIS),
                (
                    "end_stage_renal_disease",
                    END_STAGE_RENAL_DISEASE_PROCEDURES | END_STAGE_RENAL_DISEASE_ENCOUNTER,
                ),
                FRAILTY,
                NURSING_HOME,
                PALLIATIVE,
            ),
        ),
    ),
)
