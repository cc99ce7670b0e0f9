"""HL7 v2 over MLLP end to end: a real server on a real socket, a plain-socket client.

The server runs in a thread of the test process against the test database (so the
tests can look at what each message wrote); `careloop mllp` itself, with TLS and its
stop signal, runs as a subprocess at the end of the module.
"""

from __future__ import annotations

import datetime
import logging
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from careloop.clinical.models import ClinicalFact
from careloop.consent.baa import vendor_add, vendor_set_baa
from careloop.consent.models import BaaStatus, VendorKind
from careloop.core.server.listen import BindAddress, bound_port, listener_open
from careloop.core.server.tls import self_signed_ensure
from careloop.ehr.hl7 import Message, message_parse
from careloop.ehr.hl7_apply import Hl7Handler, hl7_source_ensure
from careloop.ehr.mllp import Limits, MllpServer, frame
from careloop.ehr.models import Hl7Message, Hl7Status, QuarantineItem, Source
from careloop.patients.models import Patient, PatientMerge, TimelineEvent
from careloop.scheduling.models import Appointment, AppointmentStatus
from careloop.security.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

MAX_BYTES = 64 * 1024
FRAME_TIMEOUT = 1.0


@dataclass
class Feed:
    port: int
    source: Source


@pytest.fixture
def feed() -> Iterator[Feed]:
    vendor = vendor_add(actor=None, name="Riverbend EHR", kind=VendorKind.EHR)
    vendor_set_baa(
        actor=None,
        vendor=vendor,
        status=BaaStatus.ACTIVE,
        signed_on=datetime.date(2024, 1, 1),
        expires_on=None,
    )
    source = hl7_source_ensure(name="riverbend-adt", vendor_name=vendor.name)
    listener = listener_open(BindAddress("127.0.0.1", 0))
    server = MllpServer(
        listener=listener,
        handler=Hl7Handler(source=source),
        limits=Limits(max_bytes=MAX_BYTES, frame_timeout=FRAME_TIMEOUT, idle_timeout=10.0),
    )
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield Feed(port=bound_port(listener), source=source)
    finally:
        server.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()


class Client:
    """An MLLP sender: plain sockets, writes what it is told, reads framed ACKs."""

    def __init__(self, port: int, *, context: ssl.SSLContext | None = None) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw) if context is not None else raw
        self.pending = b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: str | bytes) -> Message:
        self.write(frame(message.encode() if isinstance(message, str) else message))
        return self.ack()

    def ack_bytes(self) -> bytes:
        while b"\x1c\r" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before an ACK")
            self.pending += chunk
        block, _, self.pending = self.pending.partition(b"\x1c\r")
        assert block.startswith(b"\x0b")
        return block[1:]

    def ack(self) -> Message:
        return message_parse(self.ack_bytes())

    def closed_by_server(self, within: float) -> bool:
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(feed: Feed) -> Iterator[Client]:
    sender = Client(feed.port)
    yield sender
    sender.close()


def msh(event: str, control: str, *, kind: str = "ADT", version: str = "2.5.1") -> str:
    head = "MSH|^~\\&|EPIC|RIVERBEND|CARELOOP|CLINIC|20260302143000|"
    return f"{head}|{kind}^{event}|{control}|P|{version}"


def pid(
    mrn: str = "MRN1001",
    *,
    family: str = "Okafor",
    given: str = "Adaeze",
    birth: str = "19750411",
    city: str = "Springfield",
    phone: str = "2175550142",
) -> str:
    return (
        f"PID|1||{mrn}^^^RB&1.2.840.99&ISO^MR~123-45-6789^^^SSA^SS||{family}^{given}^^^^^L||"
        f"{birth}|F|||44 Oak Ave^^{city}^IL^62704||{phone}^PRN^PH~^NET^Internet^ada@example.org"
        "||eng" + "|" * 15 + "N"
    )


def pv1(*, location: str = "", admitted: str = "", discharged: str = "") -> str:
    """PV1 with class I (inpatient), visit number V9001 (PV1-19), PV1-44/45 times."""
    fields = ["PV1", "1", "I", location, *[""] * 15, "V9001", *[""] * 24, admitted, discharged]
    return "|".join(fields) + "\r"


def adt(event: str, control: str, **fields: str) -> str:
    return "\r".join([msh(event, control), f"EVN|{event}|20260302142900", pid(**fields)]) + "\r"


def siu(event: str, control: str, *, start: str = "202604011430", appt: str = "APPT77") -> str:
    return (
        "\r".join(
            [
                msh(event, control, kind="SIU"),
                f"SCH|P{appt}|{appt}|||||FOLLOWUP^Follow-up visit|FU^Follow-up|20|min|"
                f"^^20^{start}|||||||||||||||Booked",
                pid(),
                "RGS|1",
                f"AIS|1||FU^Follow-up visit|{start}|||20|min",
                "AIG|1",
                "AIL|1||CLINIC-NORTH^^^RIVERBEND",
                "AIP|1||1234567893^Hale^Jordan^^^Dr^^^NPI||ATTENDING",
            ]
        )
        + "\r"
    )


def code(ack: Message) -> tuple[str, str]:
    msa = ack.require("MSA")
    return msa.get(1), msa.get(2)


def only_patient() -> Patient:
    (patient,) = Patient.objects.filter(merged_into__isnull=True)
    return patient


# --- ADT ---------------------------------------------------------------------------------


def test_an_a04_registers_the_patient_and_is_acknowledged_after_commit(client: Client) -> None:
    ack = client.send(adt("A04", "C1"))

    assert code(ack) == ("AA", "C1")
    assert (ack.header.get(3), ack.header.get(5)) == ("CARELOOP", "EPIC")
    patient = only_patient()
    assert (patient.given_name, patient.family_name) == ("Adaeze", "Okafor")
    assert patient.birth_date == datetime.date(1975, 4, 11)
    assert patient.sex == "female"
    identifiers = {(i.system, i.value, i.kind) for i in patient.identifiers.all()}
    assert identifiers == {("urn:oid:1.2.840.99", "MRN1001", "mrn")}  # no SSN kept
    stored = Hl7Message.objects.get(control_id="C1")
    assert (stored.sender, stored.status, stored.message_type) == (
        "EPIC^RIVERBEND",
        Hl7Status.APPLIED,
        "ADT^A04",
    )
    event = AuditEvent.objects.get(action="hl7.receive")
    assert (event.actor_kind, event.actor_id, event.patient_id, event.outcome) == (
        "integration",
        "hl7:riverbend-adt",
        patient.pk,
        "success",
    )


def test_an_a08_updates_the_same_patient(client: Client) -> None:
    client.send(adt("A04", "C1"))
    ack = client.send(adt("A08", "C2", city="Chicago", phone="3125550100"))

    assert code(ack) == ("AA", "C2")
    patient = only_patient()
    assert patient.city.lower() == "chicago"
    phones = [c.value for c in patient.contact_points.filter(system="phone")]
    assert any(p.endswith("3125550100") for p in phones)


def test_an_a01_admission_opens_an_inpatient_encounter_and_an_a03_discharge_finishes_it(
    client: Client,
) -> None:
    admit = (
        adt("A01", "C1")
        + "PV1|1|I|WARD^12^A||||||||||||||||V9001|||||||||||||||||||||||||202603021200\r"
    )
    assert code(client.send(admit)) == ("AA", "C1")
    stay = ClinicalFact.objects.get(resource_type="Encounter")
    assert (stay.kind, stay.category, stay.status, stay.source_id) == (
        "encounter",
        "inpatient",
        "in-progress",
        "V9001",
    )
    assert stay.patient_id == only_patient().pk

    discharge = (
        adt("A03", "C2") + "PV1|1|I|||||||||||||||||V9001||||||||||||||||||||||||||202603041000\r"
    )
    assert code(client.send(discharge)) == ("AA", "C2")
    stay.refresh_from_db()
    assert stay.status == "finished"
    assert stay.effective_end == datetime.datetime(2026, 3, 4, 10, tzinfo=datetime.UTC)
    assert TimelineEvent.objects.filter(kind="visit").count() == 2


def test_an_a40_merges_the_prior_record_into_the_survivor(client: Client) -> None:
    client.send(adt("A04", "C1", mrn="MRN-OLD", given="Ada"))
    client.send(adt("A04", "C2", mrn="MRN-NEW"))
    assert Patient.objects.count() == 2
    merge = adt("A40", "C3", mrn="MRN-NEW") + "MRG|MRN-OLD^^^RB&1.2.840.99&ISO^MR\r"

    assert code(client.send(merge)) == ("AA", "C3")

    survivor = only_patient()
    duplicate = Patient.objects.get(merged_into=survivor)
    record = PatientMerge.objects.get()
    assert (record.survivor_id, record.merged_patient_id, record.merged_by_id) == (
        survivor.pk,
        duplicate.pk,
        None,
    )
    assert AuditEvent.objects.filter(action="patient.merge", actor_id="hl7:riverbend-adt").count()


def test_a_message_under_a_merged_id_lands_on_the_survivor(client: Client) -> None:
    client.send(adt("A04", "C1", mrn="MRN-OLD", given="Ada"))
    client.send(adt("A04", "C2", mrn="MRN-NEW"))
    client.send(adt("A40", "C3", mrn="MRN-NEW") + "MRG|MRN-OLD^^^RB&1.2.840.99&ISO^MR\r")

    # Whichever of its two MRNs the survivor's identifier query returns last, one of
    # these two messages makes _sync_identifiers overwrite it with the other one.
    assert code(client.send(adt("A08", "C4", mrn="MRN-OLD", city="Peoria"))) == ("AA", "C4")
    assert only_patient().city.lower() == "peoria"
    assert code(client.send(adt("A08", "C5", mrn="MRN-NEW", city="Joliet"))) == ("AA", "C5")
    assert only_patient().city.lower() == "joliet"


# --- SIU ---------------------------------------------------------------------------------


def test_siu_books_reschedules_cancels_and_records_a_no_show(client: Client) -> None:
    assert code(client.send(siu("S12", "S1"))) == ("AA", "S1")
    appointment = Appointment.objects.get()
    assert (appointment.source, appointment.status) == ("ehr", AppointmentStatus.BOOKED)
    assert appointment.start == datetime.datetime(2026, 4, 1, 14, 30, tzinfo=datetime.UTC)
    assert appointment.end - appointment.start == datetime.timedelta(minutes=20)
    assert appointment.patient_id == only_patient().pk
    assert appointment.provider.display_name == "Dr Jordan Hale"

    assert code(client.send(siu("S13", "S2", start="202604021000"))) == ("AA", "S2")
    appointment.refresh_from_db()
    assert appointment.start == datetime.datetime(2026, 4, 2, 10, tzinfo=datetime.UTC)

    assert code(client.send(siu("S15", "S3", start="202604021000"))) == ("AA", "S3")
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED

    assert code(client.send(siu("S26", "S4", appt="APPT78"))) == ("AA", "S4")
    assert Appointment.objects.get(status=AppointmentStatus.NO_SHOW).start == datetime.datetime(
        2026, 4, 1, 14, 30, tzinfo=datetime.UTC
    )
    assert Appointment.objects.count() == 2
    # Both appointments share the one placeholder provider and location for this source.
    assert len({a.provider_id for a in Appointment.objects.all()}) == 1


# --- exactly once --------------------------------------------------------------------------


def test_a_repeated_control_id_gets_the_stored_ack_and_changes_nothing(client: Client) -> None:
    first = client.send(adt("A04", "C1")).segments
    counts = (Patient.objects.count(), TimelineEvent.objects.count(), Hl7Message.objects.count())

    again = client.send(adt("A04", "C1")).segments
    changed = client.send(adt("A08", "C1", city="Chicago")).segments

    assert again == first == changed
    assert counts == (
        Patient.objects.count(),
        TimelineEvent.objects.count(),
        Hl7Message.objects.count(),
    )
    assert only_patient().city.lower() == "springfield"


# --- framing -------------------------------------------------------------------------------


def test_bytes_outside_frames_are_discarded_without_their_content_in_the_log(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client.write(b"Okafor garbage" + frame(adt("A04", "C1").encode()) + b"\r\nmore Okafor")
    assert code(client.ack()) == ("AA", "C1")
    assert code(client.send(adt("A08", "C2"))) == ("AA", "C2")
    assert "discarded" in caplog.text
    assert "Okafor" not in caplog.text


def test_a_frame_split_across_writes_is_read_whole(client: Client) -> None:
    data = frame(adt("A04", "C1").encode())
    for start in range(0, len(data), 37):
        client.write(data[start : start + 37])
        time.sleep(0.01)
    assert code(client.ack()) == ("AA", "C1")


def test_two_frames_in_one_write_and_two_messages_in_one_frame_are_each_acknowledged(
    client: Client,
) -> None:
    client.write(frame(adt("A04", "C1").encode()) + frame(siu("S12", "C2").encode()))
    assert [code(client.ack()) for _ in range(2)] == [("AA", "C1"), ("AA", "C2")]
    client.write(frame((adt("A08", "C3") + adt("A08", "C4")).encode()))
    assert [code(client.ack()) for _ in range(2)] == [("AA", "C3"), ("AA", "C4")]


def test_custom_delimiters_are_read_and_answered_in_kind(client: Client) -> None:
    text = adt("A04", "C1").replace("|", "*").replace("^", "!").replace("~", "@")
    text = text.replace("MSH*!@\\&*", "MSH*!@\\&#*")
    client.write(frame(text.encode()))
    answer = client.ack_bytes()
    assert answer.startswith(b"MSH*!@\\&#*CARELOOP*CLINIC*EPIC*RIVERBEND*")
    assert code(message_parse(answer)) == ("AA", "C1")
    assert only_patient().family_name == "Okafor"


def test_escape_sequences_in_a_name_are_resolved(client: Client) -> None:
    ack = client.send(adt("A04", "C1", family="O\\X27\\Brien", given="Mary\\X2D\\Ann"))
    assert code(ack) == ("AA", "C1")
    patient = only_patient()
    assert (patient.given_name, patient.family_name) == ("Mary-Ann", "O'Brien")


def test_an_oversized_message_gets_ar_and_the_connection_closes(client: Client) -> None:
    big = adt("A04", "C1") + "".join(f"NTE|{n}||{'x' * 200}\r" for n in range(400))
    assert len(big) > MAX_BYTES
    client.write(frame(big.encode()))
    ack = client.ack()
    assert code(ack) == ("AR", "C1")
    assert ack.require("ERR").get(3) == "104"
    assert client.closed_by_server(within=5)
    assert not Patient.objects.exists()


def test_a_slow_sender_is_cut_off_and_others_are_still_served(feed: Feed, client: Client) -> None:
    client.write(b"\x0b" + adt("A04", "C1").encode()[:40])
    started = time.monotonic()
    assert client.closed_by_server(within=FRAME_TIMEOUT + 5)
    assert time.monotonic() - started >= FRAME_TIMEOUT * 0.9
    other = Client(feed.port)
    try:
        assert code(other.send(adt("A04", "C2"))) == ("AA", "C2")
    finally:
        other.close()


# --- what cannot be taken in ------------------------------------------------------------------


def test_a_message_that_cannot_be_applied_gets_ae_writes_nothing_and_is_quarantined(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bad = adt("A04", "C1", birth="19751399")
    ack = client.send(bad)

    assert code(ack) == ("AE", "C1")
    err = ack.require("ERR")
    assert (err.get(3), err.get(2, 1), err.get(2, 3)) == ("102", "PID", "7")
    assert not Patient.objects.exists()
    item = QuarantineItem.objects.get()
    assert (item.format, item.origin) == ("hl7", "EPIC^RIVERBEND C1")
    assert "PID-7" in item.reason and "Okafor" not in item.reason
    assert item.payload == bad
    assert Hl7Message.objects.get().status == Hl7Status.ERROR
    assert AuditEvent.objects.get(action="hl7.receive").outcome == "failure"
    assert "Okafor" not in caplog.text and "19751399" not in caplog.text


def test_an_a40_without_mrg_rolls_back_the_patient_it_would_have_written(client: Client) -> None:
    ack = client.send(adt("A40", "C1"))
    assert code(ack) == ("AE", "C1")
    assert ack.require("ERR").get(3) == "100"
    assert not Patient.objects.exists()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (msh("R01", "C1", kind="ORU") + "\rPID|1||X^^^A^MR\r", "200"),
        (msh("A02", "C1") + "\rPID|1||X^^^A^MR\r", "201"),
        (msh("A04", "C1", version="2.2") + "\r" + pid() + "\r", "203"),
    ],
)
def test_unsupported_types_and_versions_are_rejected_and_quarantined(
    client: Client, message: str, error: str
) -> None:
    ack = client.send(message)
    assert code(ack) == ("AR", "C1")
    assert ack.require("ERR").get(3) == error
    assert QuarantineItem.objects.get().reason.startswith(error)
    assert Hl7Message.objects.get().status == Hl7Status.REJECTED


def test_a_message_without_a_header_is_rejected_and_quarantined(client: Client) -> None:
    ack = client.send(pid() + "\r")
    assert code(ack) == ("AR", "")
    assert QuarantineItem.objects.get().origin == "unknown sender"
    assert not Hl7Message.objects.exists()


# --- the command ------------------------------------------------------------------------------


def careloop(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "careloop", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def unverified(version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = version
    # Let the client offer old versions, so a refusal can only come from the server.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_careloop_mllp_speaks_tls_1_2_refuses_tls_1_0_and_stops_cleanly(
    scratch_env: dict[str, str], tmp_path: Path
) -> None:
    refused = careloop("mllp", "--bind", "127.0.0.1:0", "--source", "adt", env=scratch_env)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "--vendor" in refused.stderr
    for step in (
        ("vendor", "add", "Riverbend EHR", "--kind", "ehr"),
        ("vendor", "set-baa", "Riverbend EHR", "--status", "active", "--signed", "2024-01-01"),
    ):
        assert careloop(*step, env=scratch_env).returncode == 0
    pair = self_signed_ensure(directory=tmp_path / "tls")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "careloop", "mllp", "--bind", "127.0.0.1:0"),
            *("--source", "adt", "--vendor", "Riverbend EHR"),
            *("--cert", str(pair.cert_file), "--key", str(pair.key_file)),
        ],
        env=scratch_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on 127.0.0.1:" in line and "(TLS)" in line, line
        port = int(line.split("127.0.0.1:")[1].split()[0])

        secure = Client(port, context=unverified(ssl.TLSVersion.TLSv1_2))
        assert code(secure.send(adt("A04", "T1"))) == ("AA", "T1")
        secure.close()
        with pytest.raises(ssl.SSLError):
            Client(port, context=unverified(ssl.TLSVersion.TLSv1))
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err and "Okafor" not in err + out
