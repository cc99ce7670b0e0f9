"""HL7 v2 messages in the ER7 (pipe-and-hat) encoding: parsing, escapes and ACKs.

A small parser of our own rather than a library: careloop needs segments, fields,
repetitions, components and subcomponents, the delimiters a message declares in MSH-1
and MSH-2, and the escape sequences, and nothing of a library's message-structure
validation (which rejects the many real feeds that bend the standard). Errors carry an
HL7 error code (table 0357) and a reason that names positions, never values, so they
can go into an ERR segment, a quarantine reason or a log line.

Fields are numbered as the standard numbers them: `PID-5` is `segment.get(5)`. In MSH,
field 1 is the field separator itself and field 2 the encoding characters.
"""

from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass

SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}")
BATCH_SEGMENTS = frozenset({"FHS", "FTS", "BHS", "BTS"})
# Versions whose ADT and SIU messages careloop reads (2.1 and 2.2 lack PID-3 as a list).
SUPPORTED_VERSIONS = ("2.3", "2.4", "2.5", "2.6", "2.7", "2.8")


class Hl7Error(Exception):
    """A message careloop cannot take in.

    `code` is from HL7 table 0357 (100 segment sequence, 101 required field missing, 102
    data type, 103 table value not found, 200 unsupported message type, 201 unsupported
    event, 203 unsupported version, 207 application internal error); `ack` is AE (the
    application could not process it) or AR (rejected: bad header, unsupported type or
    version). `location` is a position such as "PID-7". `reason` holds no PHI.
    """

    def __init__(self, reason: str, *, code: int, ack: str = "AE", location: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.ack = ack
        self.location = location


ERROR_TEXT = {
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    104: "Value too long",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    206: "Application record locked",
    207: "Application internal error",
}


@dataclass(frozen=True, slots=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    # v2.7 adds a fifth encoding character, the truncation character; kept for the ACK.
    truncation: str = ""

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    def unescape(self, text: str) -> str:
        """Resolve \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh..\\ and \\.br\\; drop formatting
        and character-set escapes (\\H\\, \\N\\, \\Cxxyy\\, \\Mxxyyzz\\, \\.sp\\ ...)."""
        esc = self.escape
        if not esc or esc not in text:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            char = text[i]
            end = text.find(esc, i + 1) if char == esc else -1
            if end == -1:
                out.append(char)
                i += 1
                continue
            out.append(self._resolve(text[i + 1 : end], original=text[i : end + 1]))
            i = end + 1
        return "".join(out)

    def _resolve(self, sequence: str, *, original: str) -> str:
        simple = {
            "F": self.field,
            "S": self.component,
            "T": self.subcomponent,
            "R": self.repetition,
            "E": self.escape,
            ".br": "\n",
        }
        if sequence in simple:
            return simple[sequence]
        if sequence[:1] == "X" and len(sequence) % 2 == 1:
            try:
                return bytes.fromhex(sequence[1:]).decode("utf-8", errors="replace")
            except ValueError:
                return original
        if sequence[:1] in {"H", "N", "C", "M", "Z"} or sequence[:1] == ".":
            return ""
        # Not an escape sequence at all (a lone escape character in data): keep it.
        return original

    def escape_text(self, text: str) -> str:
        """The inverse of `unescape` for the delimiters (used when writing the ACK)."""
        marks = {
            self.escape: "E",
            self.field: "F",
            self.component: "S",
            self.subcomponent: "T",
            self.repetition: "R",
        }
        return "".join(f"{self.escape}{marks[c]}{self.escape}" if c in marks else c for c in text)


@dataclass(frozen=True, slots=True)
class Composite:
    """One repetition of a field: components, each with subcomponents (raw, escaped)."""

    raw: str
    delimiters: Delimiters

    def get(self, component: int = 1, subcomponent: int = 1) -> str:
        """The unescaped value at `component`.`subcomponent` (1-based); "" when absent.

        The HL7 null `""` ("delete this value") reads as "".
        """
        parts = self.raw.split(self.delimiters.component)
        if component > len(parts):
            return ""
        subs = parts[component - 1].split(self.delimiters.subcomponent)
        if subcomponent > len(subs):
            return ""
        value = self.delimiters.unescape(subs[subcomponent - 1])
        return "" if value == '""' else value


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    # fields[n] is field n as sent (raw, escaped); fields[0] is the segment name.
    fields: tuple[str, ...]
    delimiters: Delimiters

    def encoded(self, number: int) -> str:
        return self.fields[number] if number < len(self.fields) else ""

    def repeats(self, number: int) -> list[Composite]:
        """Every non-empty repetition of field `number`."""
        raw = self.encoded(number)
        if self.name == "MSH" and number <= 2:
            return [Composite(raw, self.delimiters)] if raw else []
        return [
            Composite(part, self.delimiters)
            for part in raw.split(self.delimiters.repetition)
            if part
        ]

    def get(self, number: int, component: int = 1, subcomponent: int = 1) -> str:
        """The unescaped value of the first repetition of field `number`."""
        if self.name == "MSH" and number <= 2:
            return self.encoded(number)
        found = self.repeats(number)
        return found[0].get(component, subcomponent) if found else ""


@dataclass(frozen=True, slots=True)
class Message:
    delimiters: Delimiters
    segments: tuple[Segment, ...]

    @property
    def header(self) -> Segment:
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def require(self, name: str) -> Segment:
        """The first `name` segment; `Hl7Error` 100 when the message has none."""
        found = self.first(name)
        if found is None:
            raise Hl7Error(f"the message has no {name} segment", code=100, location=name)
        return found

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    @property
    def sender(self) -> str:
        """MSH-3^MSH-4: the sending application and facility (namespace ids)."""
        return f"{self.header.get(3)}^{self.header.get(4)}"

    @property
    def control_id(self) -> str:
        return self.header.get(10)

    @property
    def message_type(self) -> str:
        """MSH-9 as TYPE^EVENT, e.g. ADT^A04."""
        return f"{self.header.get(9, 1)}^{self.header.get(9, 2)}".upper()

    @property
    def version(self) -> str:
        return self.header.get(12)


def message_text(data: bytes) -> str:
    """The message as text: UTF-8 when it is valid UTF-8, else Latin-1 (ISO 8859-1,
    the historical default of HL7 v2 feeds), which cannot fail."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def messages_split(data: bytes) -> list[bytes]:
    """The messages in one MLLP block: one normally, several when a sender packs them
    (each starts at an MSH segment); batch envelope segments (FHS, BHS...) are dropped."""
    messages: list[list[bytes]] = []
    for line in re.split(rb"\r\n|\r|\n", data):
        if not line.strip() or line[:3].decode("latin-1") in BATCH_SEGMENTS:
            continue
        if line.startswith(b"MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    return [b"\r".join(lines) + b"\r" for lines in messages]


def message_parse(data: bytes) -> Message:
    """Parse one message; `Hl7Error` (AR for a bad header, AE otherwise) if it cannot be."""
    text = message_text(data)
    lines = [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise Hl7Error("the message does not start with an MSH segment", code=100, ack="AR")
    delimiters = _delimiters(lines[0])
    segments = [_segment(line, delimiters, number) for number, line in enumerate(lines, 1)]
    return Message(delimiters=delimiters, segments=tuple(segments))


def _delimiters(header: str) -> Delimiters:
    field = header[3]
    encoding = header[4:].split(field, 1)[0]
    chars = [field, *encoding]
    bad = (
        not 4 <= len(encoding) <= 5
        or len(set(chars)) != len(chars)
        or any(c.isalnum() or c.isspace() for c in chars)
    )
    if bad:
        raise Hl7Error(
            "MSH-1/MSH-2 do not declare usable delimiters", code=102, ack="AR", location="MSH-2"
        )
    return Delimiters(
        field=field,
        component=encoding[0],
        repetition=encoding[1],
        escape=encoding[2],
        subcomponent=encoding[3],
        truncation=encoding[4] if len(encoding) == 5 else "",
    )


def _segment(line: str, delimiters: Delimiters, number: int) -> Segment:
    name = line[:3]
    if not SEGMENT_NAME.fullmatch(name) or (len(line) > 3 and line[3] != delimiters.field):
        raise Hl7Error(
            f"segment {number} has no valid segment name", code=100, location=f"segment {number}"
        )
    if name == "MSH":
        rest = line[4:].split(delimiters.field)
        fields = (name, delimiters.field, *rest)
    else:
        fields = tuple(line.split(delimiters.field))
    return Segment(name=name, fields=fields, delimiters=delimiters)


def version_check(message: Message) -> None:
    """AR 203 for a version careloop does not read; AR 101 when MSH-9/10 are missing."""
    header = message.header
    if not message.control_id:
        raise Hl7Error(
            "MSH-10 (message control id) is empty", code=101, ack="AR", location="MSH-10"
        )
    if not header.get(9, 1) or not header.get(9, 2):
        raise Hl7Error("MSH-9 (message type) is incomplete", code=101, ack="AR", location="MSH-9")
    version = message.version
    if not any(version == v or version.startswith(f"{v}.") for v in SUPPORTED_VERSIONS):
        raise Hl7Error(
            "MSH-12 names a version careloop does not read (2.3 to 2.8 are read)",
            code=203,
            ack="AR",
            location="MSH-12",
        )


def hl7_datetime(value: str, *, location: str) -> datetime.datetime | None:
    """An HL7 DTM/TS (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) as an aware datetime;
    without an offset it is read in UTC. None when empty; `Hl7Error` 102 when malformed."""
    value = value.strip()
    if not value:
        return None
    match = re.fullmatch(r"(\d{4,14})(?:\.\d{1,4})?([+-]\d{4})?", value)
    if match is None or len(match.group(1)) % 2:
        raise Hl7Error(f"{location} is not an HL7 date/time", code=102, location=location)
    given = match.group(1)
    # Missing month and day are the first ones; missing time parts are zero.
    digits = given + "0101000000"[len(given) - 4 :] if len(given) < 8 else given.ljust(14, "0")
    offset = match.group(2) or "+0000"
    try:
        return datetime.datetime.strptime(digits + offset, "%Y%m%d%H%M%S%z")
    except ValueError:
        raise Hl7Error(
            f"{location} is not a valid date/time", code=102, location=location
        ) from None


def hl7_date(value: str, *, location: str) -> datetime.date | None:
    """The calendar date an HL7 DT/DTM names (its own date, whatever its offset)."""
    moment = hl7_datetime(value, location=location)
    return moment.date() if moment is not None else None


def ack_build(
    *,
    message: Message | None,
    code: str,
    at: datetime.datetime,
    error: Hl7Error | None = None,
) -> str:
    """The acknowledgment for `message` (None when it could not be parsed at all).

    The ACK's header swaps sender and receiver, keeps the original's delimiters,
    processing id and version, and names the original control id in MSA-2. An error
    adds ERR with the HL7 error code (in ERR-1 for v2.3/2.4 receivers, and in ERR-3 as
    v2.5+ has it) and severity E. No value from the original but ids and codes.
    """
    d = message.delimiters if message is not None else Delimiters()
    header = message.header if message is not None else None

    def original(number: int) -> str:
        return header.encoded(number) if header is not None else ""

    trigger = header.get(9, 2) if header is not None else ""
    stamp = at.astimezone(datetime.UTC).strftime("%Y%m%d%H%M%S") + "+0000"
    msh = [
        "MSH",
        d.encoding_characters,
        original(5),
        original(6),
        original(3),
        original(4),
        stamp,
        "",
        d.component.join(["ACK", trigger, "ACK"]) if trigger else "ACK",
        uuid.uuid4().hex[:20].upper(),
        original(11) or "P",
        original(12) or "2.5.1",
    ]
    control_id = d.escape_text(message.control_id) if message is not None else ""
    segments = [d.field.join(msh), d.field.join(["MSA", code, control_id])]
    if error is not None:
        text = ERROR_TEXT.get(error.code, "Error")
        location = _error_location(error.location, d)
        old_style = d.component * 3 + d.subcomponent.join([str(error.code), text, "HL70357"])
        err3 = d.component.join([str(error.code), text, "HL70357"])
        segments.append(d.field.join(["ERR", old_style, location, err3, "E"]))
    return "\r".join(segments) + "\r"


def _error_location(location: str, d: Delimiters) -> str:
    """ERR-2 (an ERL: segment^occurrence^field) from a position such as "PID-7"."""
    match = re.fullmatch(r"([A-Z][A-Z0-9]{2})(?:-(\d+))?", location)
    if match is None:
        return ""
    segment, field = match.groups()
    return d.component.join([segment, "1", field]) if field else segment
