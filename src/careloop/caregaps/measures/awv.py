"""AWV: Medicare annual wellness visit, once every 12 months for patients 65 and over
(a practice-defined gap; docs/caregaps.md, "Practice gaps").

Met by a wellness visit (HCPCS G0438 initial, G0439 subsequent; SNOMED CT "Medicare
annual wellness visit") in the 12 months up to the end of the period; the visit keeps
the gap met for 12 months. The official "Annual Wellness Visit" value set is not used:
it also holds any periodic preventive visit, which is not the Medicare benefit.
"""

from __future__ import annotations

from careloop.caregaps.dsl import SNOMED, Code, age_between, exists
from careloop.caregaps.library import (
    HOSPICE,
    encounter,
    is_encounter_performed,
    is_procedure_performed,
    procedure,
)
from careloop.caregaps.measure import Closing, Group, Measure
from careloop.caregaps.practice import IN_CARE, hcpcs, last_months
from careloop.caregaps.valuesets_local import local_valueset

MEDICARE_ANNUAL_WELLNESS_VISIT = local_valueset(
    "Medicare Annual Wellness Visit",
    1,
    (
        *hcpcs("G0438", "Annual wellness visit, initial"),
        *hcpcs("G0439", "Annual wellness visit, subsequent"),
        Code("456201000124103", SNOMED, "Medicare annual wellness visit (procedure)"),
    ),
)

# The visit as the EHR records it (an Encounter typed with the code) or as a billed
# service (a Procedure with the code).
AWV_ENCOUNTER = encounter(MEDICARE_ANNUAL_WELLNESS_VISIT).where(is_encounter_performed)
AWV_PROCEDURE = procedure(MEDICARE_ANNUAL_WELLNESS_VISIT).where(is_procedure_performed)

INITIAL_POPULATION = age_between(65, None) & IN_CARE

NUMERATOR = exists(AWV_ENCOUNTER.where(lambda e: e.latest.during_day(last_months(12)))) | exists(
    AWV_PROCEDURE.where(lambda p: p.latest.during_day(last_months(12)))
)

MEASURE = Measure(
    id="AWV",
    title="Medicare Annual Wellness Visit",
    url="urn:careloop:measure:AWV",
    version="1",
    closing=(Closing(AWV_ENCOUNTER, 12), Closing(AWV_PROCEDURE, 12)),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=HOSPICE[1],
            numerator=NUMERATOR,
            exclusion_reasons=(HOSPICE,),
        ),
    ),
)
