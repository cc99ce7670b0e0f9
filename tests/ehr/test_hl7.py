"""HL7 v2 parsing, escapes and ACKs, and MLLP framing, without a network or a database."""

from __future__ import annotations

import datetime

import pytest

from careloop.ehr.hl7 import (
    Delimiters,
    Hl7Error,
    ack_build,
    hl7_date,
    hl7_datetime,
    message_parse,
    messages_split,
    version_check,
)
from careloop.ehr.mllp import Block, Discarded, FrameReader, Oversized, frame

AT = datetime.datetime(2026, 3, 2, 14, 30, tzinfo=datetime.UTC)
ADT = (
    b"MSH|^~\\&|EPIC|RIVERBEND|CARELOOP|CLINIC|20260302143000||ADT^A04^ADT_A01|CTL0001|P|2.5.1\r"
    b"EVN|A04|20260302142900\r"
    b"PID|1||MRN123^^^RB&1.2.3.4&ISO^MR~555^^^SSA^SS||Rivera^Ana^M^^^^L~Ana^Banana^^^^^N||"
    b"19800214|F|||12 Elm St^Unit 3^Springfield^IL^62701||^PRN^PH^^1^217^5550142~"
    b"^NET^Internet^ana@example.org|^WPN^PH^^1^217^5550199||spa\r"
)


def test_fields_components_repetitions_and_subcomponents_are_numbered_as_the_standard_does() -> (
    None
):
    message = message_parse(ADT)
    assert message.sender == "EPIC^RIVERBEND"
    assert message.control_id == "CTL0001"
    assert message.message_type == "ADT^A04"
    assert message.version == "2.5.1"
    pid = message.require("PID")
    assert pid.get(3) == "MRN123"
    assert pid.get(3, 4, 2) == "1.2.3.4"
    assert [cx.get(5) for cx in pid.repeats(3)] == ["MR", "SS"]
    assert [name.get(2) for name in pid.repeats(5)] == ["Ana", "Banana"]
    assert pid.get(11, 3) == "Springfield"
    assert message.header.get(1) == "|"
    assert message.header.get(2) == "^~\\&"
    assert pid.get(99) == ""


def test_a_message_declares_its_own_delimiters() -> None:
    message = message_parse(
        b"MSH*!@#$*APP*FAC*CL*CL*20260101**ADT!A08*X1*P*2.4\rPID*1**77!!!A!MR**Ng!Linh$Mai\r"
    )
    assert message.delimiters == Delimiters(
        field="*", component="!", repetition="@", escape="#", subcomponent="$"
    )
    pid = message.require("PID")
    assert pid.get(5, 1) == "Ng"
    assert pid.get(5, 2) == "Linh"
    assert pid.get(5, 2, 2) == "Mai"
    assert message.message_type == "ADT^A08"


def test_the_v27_truncation_character_is_read_and_kept_in_the_ack() -> None:
    message = message_parse(ADT.replace(b"MSH|^~\\&|", b"MSH|^~\\&#|", 1))
    assert message.delimiters.truncation == "#"
    ack = ack_build(message=message, code="AA", at=AT)
    assert ack.startswith("MSH|^~\\&#|")


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("O\\F\\Neil", "O|Neil"),
        ("A\\S\\B\\T\\C\\R\\D\\E\\E", "A^B&C~D\\E"),
        ("Mary\\X2D\\Ann", "Mary-Ann"),
        ("Jos\\XC3A9\\", "José"),
        ("line\\.br\\two", "line\ntwo"),
        ("\\H\\bold\\N\\", "bold"),
        ("a lone \\ stays", "a lone \\ stays"),
        ('""', ""),
    ],
)
def test_escape_sequences_are_resolved(raw: str, text: str) -> None:
    message = message_parse(f"MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.5\rNTE|1||{raw}\r".encode())
    assert message.require("NTE").get(3) == text


def test_escaping_for_the_ack_is_the_inverse_of_unescaping() -> None:
    delimiters = Delimiters()
    value = "a|b^c&d~e\\f"
    assert delimiters.unescape(delimiters.escape_text(value)) == value


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PID|1||123\r",
        b"MSH|^~\r",
        b"MSH|^~\\&|A|B\rP!D|1\r",
        b"MSHa^~\\&|A|B|C|D|1||ADT^A04|1|P|2.5\r",
        b"MSH|^^\\&|A|B|C|D|1||ADT^A04|1|P|2.5\r",
    ],
)
def test_a_message_without_a_usable_header_or_segments_is_an_error_with_an_hl7_code(
    data: bytes,
) -> None:
    with pytest.raises(Hl7Error) as caught:
        message_parse(data)
    assert caught.value.code in {100, 102}


@pytest.mark.parametrize(
    ("header", "code", "location"),
    [
        ("MSH|^~\\&|A|B|C|D|1||ADT^A04|1|P|2.2", 203, "MSH-12"),
        ("MSH|^~\\&|A|B|C|D|1||ADT^A04||P|2.5", 101, "MSH-10"),
        ("MSH|^~\\&|A|B|C|D|1||ADT|1|P|2.5", 101, "MSH-9"),
    ],
)
def test_versions_and_headers_careloop_cannot_read_are_rejected(
    header: str, code: int, location: str
) -> None:
    with pytest.raises(Hl7Error) as caught:
        version_check(message_parse(header.encode() + b"\r"))
    assert (caught.value.code, caught.value.ack, caught.value.location) == (code, "AR", location)


def test_the_ack_swaps_sender_and_receiver_and_names_the_original_control_id() -> None:
    ack = message_parse(ack_build(message=message_parse(ADT), code="AA", at=AT).encode())
    header = ack.header
    assert (header.get(3), header.get(4), header.get(5), header.get(6)) == (
        "CARELOOP",
        "CLINIC",
        "EPIC",
        "RIVERBEND",
    )
    assert header.get(7) == "20260302143000+0000"
    assert ack.message_type == "ACK^A04"
    assert header.get(11) == "P"
    assert ack.version == "2.5.1"
    assert ack.control_id and ack.control_id != "CTL0001"
    msa = ack.require("MSA")
    assert (msa.get(1), msa.get(2)) == ("AA", "CTL0001")
    assert ack.first("ERR") is None


def test_an_error_ack_carries_the_hl7_error_code_and_position_and_nothing_else() -> None:
    error = Hl7Error("PID-7 is not an HL7 date/time", code=102, location="PID-7")
    text = ack_build(message=message_parse(ADT), code="AE", at=AT, error=error)
    err = message_parse(text.encode()).require("ERR")
    assert err.get(3, 1) == "102"
    assert err.get(3, 3) == "HL70357"
    assert (err.get(2, 1), err.get(2, 3)) == ("PID", "7")
    assert err.get(4) == "E"
    assert "Rivera" not in text and "19800214" not in text


def test_an_ack_for_a_message_that_could_not_be_parsed_uses_the_default_delimiters() -> None:
    error = Hl7Error("no MSH", code=100, ack="AR")
    ack = message_parse(ack_build(message=None, code="AR", at=AT, error=error).encode())
    assert ack.require("MSA").get(1) == "AR"
    assert ack.require("MSA").get(2) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026", datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)),
        ("202603", datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)),
        ("20260302", datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)),
        ("202603021430", datetime.datetime(2026, 3, 2, 14, 30, tzinfo=datetime.UTC)),
        (
            "20260302143015.123-0500",
            datetime.datetime(2026, 3, 2, 19, 30, 15, tzinfo=datetime.UTC),
        ),
        ("", None),
    ],
)
def test_hl7_date_times(value: str, expected: datetime.datetime | None) -> None:
    assert hl7_datetime(value, location="X-1") == expected


@pytest.mark.parametrize("value", ["20261399", "2026-03-02", "19800", "yesterday"])
def test_malformed_dates_are_data_type_errors(value: str) -> None:
    with pytest.raises(Hl7Error) as caught:
        hl7_date(value, location="PID-7")
    assert (caught.value.code, caught.value.location) == (102, "PID-7")
    assert value not in str(caught.value)


def test_several_messages_in_one_block_are_split_and_batch_envelopes_dropped() -> None:
    second = ADT.replace(b"CTL0001", b"CTL0002")
    block = b"FHS|^~\\&\rBHS|^~\\&\r" + ADT + second.replace(b"\r", b"\n") + b"BTS|2\rFTS|1\r"
    parts = messages_split(block)
    assert [message_parse(p).control_id for p in parts] == ["CTL0001", "CTL0002"]


def test_the_frame_reader_finds_blocks_whatever_the_reads() -> None:
    reader = FrameReader(max_bytes=1000)
    stream = b"noise" + frame(b"one") + b"\r\n" + frame(b"two") + frame(b"three")
    events = [event for byte in stream for event in reader.feed(bytes([byte]))]
    assert [e for e in events if isinstance(e, Block)] == [
        Block(b"one"),
        Block(b"two"),
        Block(b"three"),
    ]
    # Garbage is let go as it arrives (never buffered), and the framing's CR LF is not garbage.
    assert sum(e.count for e in events if isinstance(e, Discarded)) == 5
    assert reader.feed(frame(b"a") + frame(b"b")) == [Block(b"a"), Block(b"b")]


def test_a_block_cut_short_by_a_new_start_is_discarded() -> None:
    reader = FrameReader(max_bytes=1000)
    assert reader.feed(b"\x0bhalf a mess" + frame(b"whole")) == [Discarded(11), Block(b"whole")]


def test_a_block_over_the_cap_is_reported_once_with_its_head() -> None:
    reader = FrameReader(max_bytes=100)
    events = reader.feed(b"\x0b" + b"M" * 150)
    assert events == [Oversized(b"M" * 150)]
    assert not reader.in_block
