"""FLU: adult influenza immunization, once per season (August 1 to March 31), for
patients 18 and over (a practice-defined gap; docs/caregaps.md, "Practice gaps").

The season is the one under way (or last begun) at the end of the period: for a
calendar-year period, August 1 of that year to March 31 of the next. Met by an
administered influenza vaccine (the practice set of CVX codes below) from the
season's start to the end of the period; a dose keeps the patient met until the end
of its season. Evaluate FLU with a period ending in the season you mean: as of
February, the season under way began the August before.
"""

from __future__ import annotations

from careloop.caregaps.dsl import MP, Code, Span, age_between, exists
from careloop.caregaps.library import HOSPICE, immunization, is_immunization_administered
from careloop.caregaps.measure import Closing, Group, Measure
from careloop.caregaps.practice import (
    CVX,
    IN_CARE,
    SEASON_MONTHS_AFTER_ANCHOR,
    season_anchor,
    season_start,
)
from careloop.caregaps.valuesets_local import local_valueset

INFLUENZA_VACCINE = local_valueset(
    "Influenza Vaccine (CVX)",
    5,
    (
        Code("88", CVX, "influenza virus vaccine, unspecified formulation"),
        Code("111", CVX, "influenza virus vaccine, live, attenuated, for intranasal use"),
        Code("135", CVX, "Influenza, high dose seasonal"),
        Code("140", CVX, "Influenza, seasonal, injectable, preservative free"),
        Code("141", CVX, "Influenza, seasonal, injectable"),
        Code("144", CVX, "influenza, seasonal, intradermal, preservative free"),
        Code("149", CVX, "influenza, live, intranasal, quadrivalent"),
        Code("150", CVX, "Influenza, injectable, quadrivalent, preservative free"),
        Code("151", CVX, "influenza nasal, unspecified formulation"),
        Code("153", CVX, "Influenza, injectable, Madin Darby Canine Kidney, preservative free"),
        Code("155", CVX, "Seasonal, trivalent, recombinant, injectable, preservative free"),
        Code("158", CVX, "influenza, injectable, quadrivalent, contains preservative"),
        Code("161", CVX, "Influenza, injectable, quadrivalent, preservative free, pediatric"),
        Code("166", CVX, "influenza, intradermal, quadrivalent, preservative free"),
        Code("168", CVX, "Seasonal trivalent influenza vaccine, adjuvanted, preservative free"),
        Code("171", CVX, "Influenza, injectable, MDCK, preservative free, quadrivalent"),
        Code("185", CVX, "Seasonal, quadrivalent, recombinant, injectable, preservative free"),
        Code("186", CVX, "Influenza, injectable, MDCK, quadrivalent, preservative"),
        Code("197", CVX, "influenza, high-dose, quadrivalent"),
        Code("205", CVX, "influenza, seasonal vaccine, quadrivalent, adjuvanted"),
    ),
)

DOSE = immunization(INFLUENZA_VACCINE).where(is_immunization_administered)

INITIAL_POPULATION = age_between(18, None) & IN_CARE

NUMERATOR = exists(DOSE.where(lambda i: i.latest.during_day(Span(season_start, MP.end))))

MEASURE = Measure(
    id="FLU",
    title="Adult Influenza Immunization",
    url="urn:careloop:measure:FLU",
    version="1",
    closing=(Closing(DOSE, SEASON_MONTHS_AFTER_ANCHOR, point=season_anchor),),
    groups=(
        Group(
            initial_population=INITIAL_POPULATION,
            denominator_exclusion=HOSPICE[1],
            numerator=NUMERATOR,
            exclusion_reasons=(HOSPICE,),
        ),
    ),
)
