"""US postal addresses: parsed and written the USPS way, and the time zone they imply.

`address_normalize` tags a free-typed address with `usaddress` (a CRF parser trained on
US addresses) and rebuilds it in USPS style (upper case, standard suffix, directional
and unit abbreviations), so the same address typed twice is stored the same way.
`time_zone_for` derives the patient's IANA zone from the state, refined by ZIP prefix
where a state spans two zones (the Florida panhandle, El Paso, western Kentucky...):
quiet hours and send windows are computed in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import usaddress

SUFFIXES = {
    "avenue": "AVE",
    "ave": "AVE",
    "av": "AVE",
    "street": "ST",
    "st": "ST",
    "str": "ST",
    "road": "RD",
    "rd": "RD",
    "drive": "DR",
    "dr": "DR",
    "boulevard": "BLVD",
    "blvd": "BLVD",
    "lane": "LN",
    "ln": "LN",
    "court": "CT",
    "ct": "CT",
    "circle": "CIR",
    "cir": "CIR",
    "place": "PL",
    "pl": "PL",
    "parkway": "PKWY",
    "pkwy": "PKWY",
    "highway": "HWY",
    "hwy": "HWY",
    "terrace": "TER",
    "ter": "TER",
    "trail": "TRL",
    "trl": "TRL",
    "way": "WAY",
    "square": "SQ",
    "sq": "SQ",
    "loop": "LOOP",
    "plaza": "PLZ",
    "expressway": "EXPY",
}
DIRECTIONS = {
    "north": "N",
    "n": "N",
    "south": "S",
    "s": "S",
    "east": "E",
    "e": "E",
    "west": "W",
    "w": "W",
    "northeast": "NE",
    "ne": "NE",
    "northwest": "NW",
    "nw": "NW",
    "southeast": "SE",
    "se": "SE",
    "southwest": "SW",
    "sw": "SW",
}
UNITS = {
    "apartment": "APT",
    "apt": "APT",
    "suite": "STE",
    "ste": "STE",
    "unit": "UNIT",
    "#": "#",
    "building": "BLDG",
    "bldg": "BLDG",
    "floor": "FL",
    "fl": "FL",
    "room": "RM",
    "rm": "RM",
    "lot": "LOT",
    "trailer": "TRLR",
}

# The zone that covers most of each state; ZIP_ZONES refines the split ones.
STATE_ZONES = {
    "AL": "America/Chicago",
    "AK": "America/Anchorage",
    "AZ": "America/Phoenix",
    "AR": "America/Chicago",
    "CA": "America/Los_Angeles",
    "CO": "America/Denver",
    "CT": "America/New_York",
    "DE": "America/New_York",
    "DC": "America/New_York",
    "FL": "America/New_York",
    "GA": "America/New_York",
    "HI": "Pacific/Honolulu",
    "ID": "America/Boise",
    "IL": "America/Chicago",
    "IN": "America/Indiana/Indianapolis",
    "IA": "America/Chicago",
    "KS": "America/Chicago",
    "KY": "America/New_York",
    "LA": "America/Chicago",
    "ME": "America/New_York",
    "MD": "America/New_York",
    "MA": "America/New_York",
    "MI": "America/Detroit",
    "MN": "America/Chicago",
    "MS": "America/Chicago",
    "MO": "America/Chicago",
    "MT": "America/Denver",
    "NE": "America/Chicago",
    "NV": "America/Los_Angeles",
    "NH": "America/New_York",
    "NJ": "America/New_York",
    "NM": "America/Denver",
    "NY": "America/New_York",
    "NC": "America/New_York",
    "ND": "America/Chicago",
    "OH": "America/New_York",
    "OK": "America/Chicago",
    "OR": "America/Los_Angeles",
    "PA": "America/New_York",
    "RI": "America/New_York",
    "SC": "America/New_York",
    "SD": "America/Chicago",
    "TN": "America/Chicago",
    "TX": "America/Chicago",
    "UT": "America/Denver",
    "VT": "America/New_York",
    "VA": "America/New_York",
    "WA": "America/Los_Angeles",
    "WV": "America/New_York",
    "WI": "America/Chicago",
    "WY": "America/Denver",
    "PR": "America/Puerto_Rico",
    "VI": "America/St_Thomas",
    "GU": "Pacific/Guam",
    "AS": "Pacific/Pago_Pago",
    "MP": "Pacific/Saipan",
}
# ZIP prefixes (first three digits) in the other zone of a split state.
ZIP_ZONES = {
    **dict.fromkeys(("324", "325"), "America/Chicago"),  # Florida panhandle
    **dict.fromkeys(("798", "799", "885"), "America/Denver"),  # El Paso, Texas
    **dict.fromkeys(("463", "464"), "America/Chicago"),  # northwest Indiana
    **dict.fromkeys(("420", "421", "422", "423", "424", "427"), "America/Chicago"),  # west KY
    **dict.fromkeys(("376", "377", "378", "379"), "America/New_York"),  # east Tennessee
    **dict.fromkeys(("498", "499"), "America/Menominee"),  # Michigan's Upper Peninsula
    **dict.fromkeys(("575", "577"), "America/Denver"),  # western South Dakota
    **dict.fromkeys(("586", "587", "588"), "America/Denver"),  # south-west North Dakota
    **dict.fromkeys(("690", "691", "692", "693"), "America/Denver"),  # western Nebraska
    **dict.fromkeys(("677", "678", "679"), "America/Denver"),  # western Kansas
    **dict.fromkeys(("835", "838"), "America/Los_Angeles"),  # northern Idaho
    "979": "America/Boise",  # Malheur County, Oregon
}
_ZIP = re.compile(r"^(\d{5})(?:-?(\d{4}))?$")


class AddressError(ValueError):
    """The address cannot be read as a US postal address; the message says what is missing."""


@dataclass(frozen=True)
class Address:
    line: str  # "1600 N PENNSYLVANIA AVE NW APT 4B"
    city: str  # "WASHINGTON"
    state: str  # "DC"
    postal_code: str  # "20500" or "20500-0003"


def _word(text: str, table: dict[str, str]) -> str:
    key = text.strip().rstrip(".").lower()
    return table.get(key, text.strip().rstrip(".").upper())


def address_normalize(*, line: str, city: str, state: str, postal_code: str) -> Address:
    """The address in USPS style, or `AddressError` saying what could not be read."""
    zip_match = _ZIP.match(postal_code.strip())
    if not zip_match:
        raise AddressError("The ZIP code must be 5 digits, or 5+4 (12345-6789).")
    state_code = state.strip().upper()
    if state_code not in STATE_ZONES:
        raise AddressError("Use the two-letter US state code, e.g. TX.")
    try:
        tagged, kind = usaddress.tag(line.strip())
    except usaddress.RepeatedLabelError:
        raise AddressError("The street line reads as more than one address.") from None
    if kind not in {"Street Address", "Ambiguous"} or "AddressNumber" not in tagged:
        if "USPSBoxID" in tagged:
            parts = ["PO BOX", tagged["USPSBoxID"].upper()]
            return _address(" ".join(parts), city, state_code, zip_match)
        raise AddressError("The street line needs a house number and a street name.")
    parts = [tagged["AddressNumber"].upper()]
    if "StreetNamePreDirectional" in tagged:
        parts.append(_word(tagged["StreetNamePreDirectional"], DIRECTIONS))
    if "StreetNamePreType" in tagged:
        parts.append(tagged["StreetNamePreType"].upper())
    if "StreetName" not in tagged:
        raise AddressError("The street line needs a street name.")
    parts.append(tagged["StreetName"].upper())
    if "StreetNamePostType" in tagged:
        parts.append(_word(tagged["StreetNamePostType"], SUFFIXES))
    if "StreetNamePostDirectional" in tagged:
        parts.append(_word(tagged["StreetNamePostDirectional"], DIRECTIONS))
    if "OccupancyType" in tagged or "OccupancyIdentifier" in tagged:
        unit = _word(tagged.get("OccupancyType", "#"), UNITS)
        identifier = tagged.get("OccupancyIdentifier", "").lstrip("#").upper()
        parts.append(f"{unit} {identifier}".strip())
    return _address(" ".join(parts), city, state_code, zip_match)


def _address(line: str, city: str, state: str, zip_match: re.Match[str]) -> Address:
    place = " ".join(city.split()).upper()
    if not place:
        raise AddressError("The city is missing.")
    five, four = zip_match.groups()
    return Address(
        line=" ".join(line.split()),
        city=place,
        state=state,
        postal_code=f"{five}-{four}" if four else five,
    )


def time_zone_for(*, state: str, postal_code: str = "") -> str:
    """The IANA time zone of a US address (state, refined by ZIP prefix)."""
    zone = ZIP_ZONES.get(postal_code.strip()[:3])
    if zone is not None and postal_code.strip()[:3].isdigit():
        return zone
    try:
        return STATE_ZONES[state.strip().upper()]
    except KeyError:
        raise AddressError("Use the two-letter US state code, e.g. TX.") from None
