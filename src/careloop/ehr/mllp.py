"""The MLLP listener behind `careloop mllp`: framing, limits, TLS and a graceful stop.

MLLP wraps each HL7 message in a block: <VT> message <FS><CR>. `FrameReader` turns the
byte stream into blocks whatever the TCP segmentation (a block split over many reads,
several blocks in one read), discards bytes outside a block (counted, never logged),
drops a block cut short by a new <VT>, and stops a block that grows past the size cap.

`MllpServer` is threaded: the ORM is synchronous, and a feed is a handful of long-lived
connections, so a thread per connection (up to a cap) is the simple fit. Each message
is answered before the next is read, in order, as MLLP senders expect. A connection is
closed when a block does not complete within the frame timeout (a slow or stuck sender
holds no thread for long) or stays idle past the idle timeout; senders reconnect.
On SIGTERM or SIGINT the server stops accepting, lets each connection finish the
message in hand, and exits; a second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from django.db import InterfaceError, OperationalError, close_old_connections, connections

from careloop.core import shutdown

logger = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
# How often a waiting connection looks at the stop flag and its deadlines.
POLL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 1024 * 1024
    frame_timeout: float = 30.0
    idle_timeout: float = 300.0
    max_connections: int = 32


@dataclass(frozen=True, slots=True)
class Block:
    """A complete MLLP block's content (one message, or several a sender packed)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Oversized:
    """A block passed the size cap; `head` is its first bytes (enough for the MSH)."""

    head: bytes


@dataclass(frozen=True, slots=True)
class Discarded:
    """Bytes outside any block, or a block cut short by a new start byte."""

    count: int


Event = Block | Oversized | Discarded


class FrameReader:
    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._in_block = False

    @property
    def in_block(self) -> bool:
        return self._in_block

    def feed(self, data: bytes) -> list[Event]:
        """The events `data` completes; partial input is kept for the next call."""
        self._buffer += data
        events: list[Event] = []
        while self._buffer:
            if not self._in_block:
                start = self._buffer.find(START_BLOCK)
                outside = len(self._buffer) if start == -1 else start
                # A CR or LF after <FS> (or between blocks) is the framing, not garbage.
                if self._buffer[:outside].strip(b"\r\n"):
                    events.append(Discarded(outside))
                del self._buffer[: outside + (start != -1)]
                self._in_block = start != -1
                continue
            end = self._buffer.find(END_BLOCK)
            restart = self._buffer.find(START_BLOCK)
            if restart != -1 and (end == -1 or restart < end):
                events.append(Discarded(restart))
                del self._buffer[: restart + 1]
                continue
            if end == -1:
                if len(self._buffer) > self.max_bytes:
                    events.append(Oversized(bytes(self._buffer[:4096])))
                    self._buffer.clear()
                    self._in_block = False
                break
            if end > self.max_bytes:
                events.append(Oversized(bytes(self._buffer[:4096])))
            else:
                events.append(Block(bytes(self._buffer[:end])))
            del self._buffer[: end + 1]
            self._in_block = False
        return events


def frame(message: bytes) -> bytes:
    return START_BLOCK + message + END_BLOCK + CARRIAGE_RETURN


class Handler(Protocol):
    """What the server does with messages (careloop.ehr.hl7_apply.Hl7Handler)."""

    def message(self, data: bytes) -> bytes:
        """The ACK for one message. May raise a database error to close without one."""

    def oversized(self, head: bytes, limit: int) -> bytes:
        """The AR for a message over the cap, from its first bytes."""


class MllpServer:
    def __init__(
        self,
        *,
        listener: socket.socket,
        handler: Handler,
        limits: Limits,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.listener = listener
        self.handler = handler
        self.limits = limits
        self.tls = tls
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if shutdown.requested.is_set():
            self._stop.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop.is_set():
            logger.warning("second %s: stopping now", signal.Signals(signum).name)
            os._exit(1)
        logger.info("%s received: finishing messages in hand, then stopping", signum)
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def serve_forever(self) -> None:
        """Accept connections until stopped, then wait for each to finish its message."""
        self.listener.settimeout(POLL_SECONDS)
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                self._start(conn)
        finally:
            self.listener.close()
            for thread in list(self._threads):
                thread.join()

    def _start(self, conn: socket.socket) -> None:
        with self._lock:
            if len(self._threads) >= self.limits.max_connections:
                logger.warning("mllp: %d connections open; refusing another", len(self._threads))
                conn.close()
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.add(thread)
        thread.start()

    # --- one connection -----------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        try:
            stream = self._secure(conn)
            if stream is not None:
                with stream:
                    self._converse(stream)
        except OSError as error:
            logger.info("mllp: connection ended (%s)", type(error).__name__)
        finally:
            conn.close()
            connections.close_all()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _secure(self, conn: socket.socket) -> socket.socket | None:
        if self.tls is None:
            return conn
        conn.settimeout(self.limits.frame_timeout)
        try:
            return self.tls.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as error:
            # Includes TLS 1.0/1.1 clients and plain MLLP on the TLS port.
            logger.info("mllp: TLS handshake refused (%s)", getattr(error, "reason", None))
            return None

    def _converse(self, stream: socket.socket) -> None:
        reader = FrameReader(max_bytes=self.limits.max_bytes)
        idle_since = block_since = time.monotonic()
        while not self._stop.is_set():
            moment = time.monotonic()
            if reader.in_block and moment - block_since > self.limits.frame_timeout:
                logger.info("mllp: a message did not complete in time; closing the connection")
                return
            if not reader.in_block and moment - idle_since > self.limits.idle_timeout:
                logger.info("mllp: connection idle too long; closing it")
                return
            stream.settimeout(POLL_SECONDS)
            try:
                data = stream.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            was_in_block = reader.in_block
            for event in reader.feed(data):
                if not self._answer(stream, event):
                    return
            idle_since = time.monotonic()
            if reader.in_block and not was_in_block or not reader.in_block:
                block_since = idle_since

    def _answer(self, stream: socket.socket, event: Event) -> bool:
        """Answer one event; False when the connection must close."""
        if isinstance(event, Discarded):
            logger.warning("mllp: discarded %d bytes outside a message block", event.count)
            return True
        if isinstance(event, Oversized):
            logger.warning("mllp: a message over %d bytes was refused", self.limits.max_bytes)
            stream.sendall(frame(self.handler.oversized(event.head, self.limits.max_bytes)))
            return False
        from careloop.ehr.hl7 import messages_split

        for message in messages_split(event.data):
            close_old_connections()
            try:
                ack = self.handler.message(message)
            except (OperationalError, InterfaceError):
                logger.error("mllp: database unavailable; closing without an ACK")
                return False
            stream.sendall(frame(ack))
        return True
