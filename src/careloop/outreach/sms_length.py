"""How a carrier counts an SMS: GSM-7 or UCS-2, and how many segments.

A text is GSM-7 when every character is in the GSM 03.38 tables (the extension table's
characters take two septets); one character outside them (á, í, ó, ú, an emoji, a
curly quote) makes the whole text UCS-2, with less than half the room per segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# GSM 03.38: the basic table (one septet each) and its extension (escape + one: two).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets, or UTF-16 code units
    segments: int


def _pack(costs: Iterable[int], *, single: int, part: int) -> tuple[int, int]:
    """(units, segments): one segment up to `single`; else parts of `part` units, a
    character never split across two (an escape pair, a surrogate pair)."""
    costs = list(costs)
    units = sum(costs)
    if units <= single:
        return units, 1 if units else 0
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return units, segments


def sms_length(text: str) -> SmsLength:
    """How a carrier counts `text`: GSM-7 when every character is in the GSM tables
    (160 alone, 153 per part), else UCS-2 (70 alone, 67 per part)."""
    if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text):
        costs = (2 if ch in GSM_EXTENSION else 1 for ch in text)
        return SmsLength("GSM-7", *_pack(costs, single=160, part=153))
    costs = (len(ch.encode("utf-16-le")) // 2 for ch in text)
    return SmsLength("UCS-2", *_pack(costs, single=70, part=67))
