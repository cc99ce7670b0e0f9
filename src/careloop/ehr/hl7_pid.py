"""PID (and MRG) as careloop's identity path takes them: `IncomingPatient`.

PID-3 identifiers with their assigning authority as the system, PID-5 name (the legal
one when several), PID-7 birth date, PID-8 sex, PID-11 address, PID-13/14 phones and
e-mail, PID-15 language, PID-29/30 death. Values stay raw: careloop normalises them.
"""

from __future__ import annotations

from careloop.ehr.hl7 import Composite, Hl7Error, Segment, hl7_date
from careloop.ehr.identity import IncomingContact, IncomingIdentifier, IncomingPatient
from careloop.ehr.models import Source

SEX = {"F": "female", "M": "male", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
# ISO 639-2 codes some EHRs send in PID-15, as the BCP-47 careloop keeps.
LANGUAGES = {
    "eng": "en",
    "spa": "es",
    "fre": "fr",
    "fra": "fr",
    "chi": "zh",
    "zho": "zh",
    "vie": "vi",
    "kor": "ko",
    "rus": "ru",
    "ara": "ar",
    "por": "pt",
    "ger": "de",
    "deu": "de",
    "ita": "it",
    "pol": "pl",
    "hat": "ht",
    "tgl": "tl",
    "jpn": "ja",
    "hin": "hi",
}
# Identifier types (HL7 table 0203) careloop does not keep from a feed: it has no use
# for a Social Security or driver's licence number, so it does not hold one.
IDENTIFIER_TYPES_NOT_KEPT = frozenset({"SS", "SSN", "DL"})


def source_patient_id(identifiers: list[Composite], *, location: str) -> str:
    """The source's own id for a patient: the first MR (medical record number) in a CX
    list, else the first identifier."""
    usable = [cx for cx in identifiers if cx.get(1)]
    if not usable:
        raise Hl7Error(f"{location} has no patient identifier", code=101, location=location)
    chosen = next((cx for cx in usable if cx.get(5).upper() == "MR"), usable[0])
    value = chosen.get(1)
    if len(value) > 64:
        raise Hl7Error(f"{location} is longer than 64 characters", code=102, location=location)
    return value


def patient_from_pid(pid: Segment, *, source: Source) -> tuple[str, IncomingPatient]:
    """(the source's patient id, the patient as careloop's identity path takes it)."""
    source_id = source_patient_id(pid.repeats(3), location="PID-3")
    name = _legal_name(pid)
    birth_date = hl7_date(pid.get(7), location="PID-7")
    if not name.get(1) or not name.get(2):
        raise Hl7Error("PID-5 lacks a family or given name", code=101, location="PID-5")
    if birth_date is None:
        raise Hl7Error("PID-7 (birth date) is empty", code=101, location="PID-7")
    address = pid.repeats(11)[0] if pid.repeats(11) else None
    death = hl7_date(pid.get(29), location="PID-29")
    return source_id, IncomingPatient(
        given_name=name.get(2),
        family_name=name.get(1),
        birth_date=birth_date,
        sex=SEX.get(pid.get(8).upper()[:1], "unknown"),
        identifiers=_identifiers(pid, source=source),
        contacts=_contacts(pid),
        address_line=" ".join(filter(None, [address.get(1), address.get(2)])) if address else "",
        city=address.get(3) if address else "",
        state=address.get(4) if address else "",
        postal_code=address.get(5) if address else "",
        preferred_language=_language(pid.get(15)),
        deceased_on=death,
        deceased=death is not None or pid.get(30).upper() == "Y",
    )


def _legal_name(pid: Segment) -> Composite:
    names = pid.repeats(5)
    if not names:
        raise Hl7Error("PID-5 (patient name) is empty", code=101, location="PID-5")
    return next((n for n in names if n.get(7).upper() == "L"), names[0])


def _identifiers(pid: Segment, *, source: Source) -> tuple[IncomingIdentifier, ...]:
    found: list[IncomingIdentifier] = []
    for cx in pid.repeats(3):
        kind = cx.get(5).upper()
        if not cx.get(1) or kind in IDENTIFIER_TYPES_NOT_KEPT:
            continue
        found.append(
            IncomingIdentifier(
                system=_authority(cx, source=source),
                value=cx.get(1),
                kind="mrn" if kind == "MR" else "external",
            )
        )
    return tuple(found)


def _authority(cx: Composite, *, source: Source) -> str:
    """CX-4 (assigning authority, an HD) as a system: its OID or URI when it gives one,
    else its namespace id; a source without one gets its own."""
    universal, universal_type = cx.get(4, 2), cx.get(4, 3).upper()
    if universal and universal_type == "ISO":
        return f"urn:oid:{universal}"
    if universal:
        return universal
    namespace = cx.get(4, 1)
    return f"urn:careloop:hl7:{source.name}:{namespace or 'id'}"


def _contacts(pid: Segment) -> tuple[IncomingContact, ...]:
    found: list[IncomingContact] = []
    for number, default_use in ((13, "home"), (14, "work")):
        for xtn in pid.repeats(number):
            contact = _contact(xtn, default_use=default_use)
            if contact is not None:
                found.append(contact)
    return tuple(found)


def _contact(xtn: Composite, *, default_use: str) -> IncomingContact | None:
    """An XTN as a contact point: XTN-4 for e-mail; XTN-1, or area code and number
    (XTN-6, XTN-7) as v2.5+ sends them, for a phone."""
    use_code, equipment = xtn.get(2).upper(), xtn.get(3).upper()
    if use_code == "NET" or equipment in {"INTERNET", "X.400"}:
        email = xtn.get(4) or xtn.get(1)
        return IncomingContact(system="email", value=email, use=default_use) if email else None
    phone = xtn.get(1) or (xtn.get(6) + xtn.get(7))
    if not phone:
        return None
    use = "mobile" if equipment in {"CP", "BP"} else default_use
    return IncomingContact(system="phone", value=phone, use=use)


def _language(code: str) -> str:
    code = code.strip().lower()
    if len(code) == 2 and code.isalpha():
        return code
    return LANGUAGES.get(code, "")
